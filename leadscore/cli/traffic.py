"""``leadscore simulate``, ``tail`` and ``topics``: lead traffic on Kafka, and a look at it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from leadscore.cli.config import load_settings


def simulate(
    rate: float = typer.Option(500.0, help="events per second to publish"),
    duration: float | None = typer.Option(None, help="seconds to run (default: until Ctrl-C)"),
    leads: int = typer.Option(2000, help="leads per simulated cohort"),
    days: float = typer.Option(30.0, help="days of history each cohort spans (event time)"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path | None = typer.Option(
        None, help="write events to this JSON-lines file instead of Kafka"
    ),
    truth: Path | None = typer.Option(
        None, help="with --out: write each lead's hidden truth to this CSV"
    ),
    shift_at: str | None = typer.Option(
        None,
        help="switch to the shifted regime at this ISO time (with a zone), or this fraction "
        "of the span (--out) or of --duration (live)",
    ),
    shift_open_factor: float | None = typer.Option(
        None, help="with --shift-at: email open factor after the shift (default 0.45)"
    ),
) -> None:
    """Publish simulated lead activity to Kafka, or write a labeled event file.

    Each lead has a hidden intent that drives its activity; some convert. Events go to
    their topics keyed by lead id. With --out, events are written to a file (and the
    truth per lead to --truth) and nothing is published. With --shift-at, the industry
    mix, what converts and email opens change at that time (docs/simulator.md).
    """
    from leadscore.jobs.simulate import ShiftOptionError, simulate_job

    if truth is not None and out is None:
        typer.secho(
            "--truth needs --out (live traffic has no truth file)", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(2)
    if shift_open_factor is not None and shift_at is None:
        typer.secho("--shift-open-factor needs --shift-at", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        simulate_job(
            load_settings(),
            rate=rate,
            duration=duration,
            leads=leads,
            days=days,
            seed=seed,
            out=out,
            truth=truth,
            shift_at=shift_at,
            shift_open_factor=shift_open_factor,
        )
    except ShiftOptionError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def tail(
    topic: str = typer.Option("leads.scores.v1", help="topic to print"),
    from_beginning: bool = typer.Option(False, help="start at the oldest record"),
    limit: int | None = typer.Option(None, help="stop after this many records"),
) -> None:
    """Print records of a topic as JSON lines (score events by default)."""
    from leadscore.jobs.simulate import tail_job

    asyncio.run(tail_job(load_settings(), topic=topic, from_beginning=from_beginning, limit=limit))


def topics() -> None:
    """Create leadscore's topics (if missing) and print their partition counts."""
    from leadscore.infra.kafka.client import TopicLayoutError, ensure_topics

    try:
        layout = asyncio.run(ensure_topics(load_settings()))
    except TopicLayoutError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    for name, partitions in sorted(layout.items()):
        typer.echo(f"{name}\t{partitions} partitions")
