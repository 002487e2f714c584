"""The ``leadscore`` command: worker, train, simulate, demo and friends."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError

from leadscore.settings import Settings, env_var

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


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # say which variable is wrong, by its name
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            variable = env_var(field)
            lines.append(f"  {variable}: {error['msg']} (got {error.get('input')!r})")
        typer.secho("invalid configuration:\n" + "\n".join(lines), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc



@app.command()
def worker(
    loglevel: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the stream worker: consume lead events, keep per-lead state, publish score changes.

    Reads leads.activity.v1, leads.profile.v1 and leads.outcome.v1; writes leads.scores.v1,
    leads.dead-letter.v1 and the latest scores to Redis. Creates missing topics first.
    Scale out by starting more workers with the same LEADSCORE_APP_ID; the input topics'
    partition count bounds how many get work.
    """
    from leadscore.streams.app import NoModelError
    from leadscore.streams.kafka import TopicLayoutError
    from leadscore.streams.runner import run_worker

    settings = _settings()
    try:
        run_worker(settings, loglevel=loglevel)
    except (NoModelError, TopicLayoutError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


@app.command()
def train(
    leads: int = typer.Option(4000, help="simulated leads to train on (when --events is not given)"),
    events: Optional[Path] = typer.Option(
        None, help="train on a JSON-lines event log (one CloudEvent per line) instead of simulated leads"
    ),
    horizon_days: float = typer.Option(30.0, help="a snapshot is positive if the lead converts within this"),
    seed: int = typer.Option(0, help="random seed (simulation, snapshots, models)"),
    cv_folds: int = typer.Option(5, help="cross-validation folds for the reported metrics"),
    promote: bool = typer.Option(True, help="make the new model the champion"),
) -> None:
    """Train the 40/40/20 ensemble on a point-in-time training set and save it to the registry.

    Without --events, a simulated population of leads is generated (see docs/simulator.md).
    The model is saved under LEADSCORE_MODEL_DIR with a manifest of its metrics.
    """
    from leadscore.jobs import train_job

    settings = _settings()
    if events is not None and not events.is_file():
        typer.secho(f"--events {events}: no such file", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        train_job(settings, leads=leads, events=events, horizon_days=horizon_days, seed=seed,
                  cv_folds=cv_folds, promote=promote)
    except ValueError as exc:  # InsufficientDataError, or an invalid record in --events
        typer.secho(f"cannot train: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


@app.command()
def simulate(
    rate: float = typer.Option(500.0, help="events per second to publish"),
    duration: Optional[float] = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
    leads: int = typer.Option(2000, help="leads per simulated cohort"),
    days: float = typer.Option(30.0, help="days of history each cohort spans (event time)"),
    seed: int = typer.Option(0, help="random seed"),
    out: Optional[Path] = typer.Option(None, help="write events to this JSON-lines file instead of Kafka"),
    truth: Optional[Path] = typer.Option(None, help="with --out: write each lead's hidden truth to this CSV"),
) -> None:
    """Publish simulated lead activity to Kafka, or write a labeled event file.

    Each lead has a hidden intent that drives its activity; some convert. Events go to
    their topics keyed by lead id. With --out, events are written to a file (and the
    truth per lead to --truth) and nothing is published.
    """
    from leadscore.jobs import simulate_job

    if truth is not None and out is None:
        typer.secho("--truth needs --out (live traffic has no truth file)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    simulate_job(_settings(), rate=rate, duration=duration, leads=leads, days=days, seed=seed,
                 out=out, truth=truth)


@app.command()
def tail(
    topic: str = typer.Option("leads.scores.v1", help="topic to print"),
    from_beginning: bool = typer.Option(False, help="start at the oldest record"),
    limit: Optional[int] = typer.Option(None, help="stop after this many records"),
) -> None:
    """Print records of a topic as JSON lines (score events by default)."""
    from leadscore.jobs import tail_job

    asyncio.run(tail_job(_settings(), topic=topic, from_beginning=from_beginning, limit=limit))


@app.command()
def topics() -> None:
    """Create leadscore's topics (if missing) and print their partition counts."""
    from leadscore.streams.kafka import TopicLayoutError, ensure_topics

    try:
        layout = asyncio.run(ensure_topics(_settings()))
    except TopicLayoutError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    for name, partitions in sorted(layout.items()):
        typer.echo(f"{name}\t{partitions} partitions")


@app.command()
def demo(
    duration: Optional[float] = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
    rate: float = typer.Option(300.0, help="simulated events per second"),
    leads: int = typer.Option(1000, help="leads per simulated cohort"),
) -> None:
    """Everything on one machine: embedded broker and Redis, worker, simulated traffic, live view.

    Uses KAFKA_BOOTSTRAP / REDIS_URL instead of the embedded servers when they are set.
    Trains a first model if the registry is empty.
    """
    from leadscore.demo import DemoError, run_demo
    from leadscore.infra.errors import InfraError

    try:
        run_demo(_settings(), duration=duration, rate=rate, leads=leads)
    except (DemoError, InfraError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo("stopped")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
