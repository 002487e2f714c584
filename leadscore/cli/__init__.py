"""The ``leadscore`` command: worker, train, models, simulate, demo and friends.

The commands live in one module per group (run, training, closed_loop, traffic, access, models,
privacy, sealed);
this module builds the root command from them, in the order ``leadscore --help`` lists them.
"""

from __future__ import annotations

import logging

import typer

from leadscore.cli import (
    access,
    closed_loop,
    models,
    privacy,
    run,
    sealed,
    servers,
    traffic,
    training,
)

app = typer.Typer(
    name="leadscore",
    help=(
        "Real-time AI lead scoring on Kafka.\n\n"
        "Configuration comes from environment variables (KAFKA_BOOTSTRAP, REDIS_URL, "
        "LEADSCORE_*); see the README."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
for command in (
    run.worker,
    training.train,
    training.score,
    closed_loop.retrain,
    closed_loop.drift,
    traffic.simulate,
    traffic.tail,
    traffic.topics,
    run.api,
    access.audit,
    privacy.erase,
    sealed.dead_letters,
    privacy.export,
    run.demo,
    servers.broker,
    servers.redis,
):
    app.command()(command)
app.add_typer(models.models_app, name="models")
app.add_typer(access.keys_app, name="keys")
app.add_typer(sealed.data_keys_app, name="data-keys")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()
