"""``leadscore retrain`` and ``leadscore drift``: run the closed loop's retrain, read its state."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

from leadscore.cli.config import load_settings, redis_client

if TYPE_CHECKING:
    from leadscore.infra.closed_loop_store import ClosedLoopView


def retrain(
    detail: str = typer.Option("", help="why, for the record (e.g. a ticket)"),
    as_json: bool = typer.Option(False, "--json", help="print the decision record as JSON"),
) -> None:
    """Retrain on leads.training.v1 and promote the candidate only if it beats the champion.

    The same run as the worker's automatic retrain (docs/drift.md), here in this process,
    trigger "manual": the latest labelled outcomes, the most recent share held out, the
    candidate and the champion scored on that holdout, promotion only by
    LEADSCORE_RETRAIN_MARGIN of ROC-AUC. The decision is recorded in Redis and published on
    models.events.v1. Exit status 0 when promoted, rejected or skipped; 1 when it failed.
    """
    import io

    from rich.console import Console

    from leadscore.cli.closed_loop_text import decision_lines
    from leadscore.jobs.retrain import retrain_job

    settings = load_settings()
    try:
        record = retrain_job(
            settings, trigger="manual", detail=detail, console=Console(file=io.StringIO())
        )
    except (
        Exception
    ) as exc:  # recorded and published as "failed" by retrain_job; say why and exit 1
        typer.secho(f"retrain failed: {type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo("\n".join(decision_lines(record)))


def drift(
    top: int = typer.Option(5, help="features to show per model, most drifting first"),
    decisions: int = typer.Option(5, help="recent retrain decisions to show"),
) -> None:
    """The latest drift report and live performance of each model version, and recent retrains.

    Read from Redis, where the worker's drift agent keeps them: alert level, window, the
    most drifting features with their statistic and p-value, the score distribution's
    test, the metrics over the latest labelled outcomes (docs/drift.md).
    """
    from leadscore.cli.closed_loop_text import drift_lines
    from leadscore.infra.closed_loop_store import ClosedLoopKeys, read_closed_loop

    settings = load_settings()

    async def read() -> ClosedLoopView:
        client = redis_client(settings)
        try:
            return await read_closed_loop(
                client, ClosedLoopKeys(settings.redis_prefix), latest=True, performance=True,
                decisions=decisions,
            )  # fmt: skip
        finally:
            await client.aclose()

    view = asyncio.run(read())
    typer.echo("\n".join(drift_lines(view.latest, view.performance, view.decisions, top=top)))
