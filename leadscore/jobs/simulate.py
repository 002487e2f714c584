"""Simulated traffic (to a file or live to the topics), and tailing a topic.

Each job takes :class:`~leadscore.settings.Settings` and plain arguments, so the CLI,
the demo and tests call the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from rich.console import Console

from leadscore.infra.kafka.client import new_consumer, stop_consumer
from leadscore.infra.kafka.publish import PublishStats, publish
from leadscore.settings import Settings
from leadscore.simulation.config import Shift, SimConfig
from leadscore.simulation.files import write_labeled_files
from leadscore.simulation.shift import parse_shift_at, shift_regime
from leadscore.simulation.simulator import Simulator


class ShiftOptionError(ValueError):
    """--shift-at / --shift-open-factor cannot be used as given."""


def _shift_option(
    shift_at: str | None, open_factor: float | None, *, start: datetime, span: timedelta | None
) -> Shift | None:
    """The --shift-at/--shift-open-factor options as a Shift (``span`` None: live, no --duration)."""
    if shift_at is None:
        return None
    if span is None and shift_at.replace(".", "", 1).isdigit():
        raise ShiftOptionError("--shift-at as a fraction needs --duration (live) or --out")
    try:
        at = parse_shift_at(shift_at, start=start, span=span or timedelta(0))
        return Shift(at=at, regime=shift_regime(open_factor))
    except ValueError as exc:
        raise ShiftOptionError(str(exc)) from exc


def simulate_job(
    settings: Settings,
    *,
    rate: float = 500.0,
    duration: float | None = None,
    leads: int = 2000,
    days: float = 30.0,
    seed: int = 0,
    out: Path | None = None,
    truth: Path | None = None,
    console: Console | None = None,
    shift_at: str | None = None,
    shift_open_factor: float | None = None,
) -> None:
    """Publish live simulated traffic to Kafka, or write a labeled event file.

    With ``out``, one run of ``leads`` leads over ``days`` days is written as JSON
    lines (and each lead's hidden truth to ``truth`` as CSV); nothing is published.
    Otherwise cohorts of ``leads`` leads are published at ``rate`` events/s until
    ``duration`` seconds pass or Ctrl-C. ``shift_at`` (ISO time or fraction of the
    span, or of ``duration`` when live) switches to the shifted regime
    (:func:`~leadscore.simulation.shift.shift_regime`).

    Raises:
        ShiftOptionError: ``shift_at`` is not a time, or a fraction with nothing to divide.
    """
    console = console or Console(stderr=True)
    now = datetime.now(UTC)
    if out is not None:  # the file's span ends now
        shift = _shift_option(
            shift_at, shift_open_factor, start=now - timedelta(days=days), span=timedelta(days=days)
        )
    else:  # live: wall-clock time from the start of publishing
        shift = _shift_option(
            shift_at,
            shift_open_factor,
            start=now,
            span=None if duration is None else timedelta(seconds=duration),
        )
    config = SimConfig(n_leads=leads, span_days=days, seed=seed, shift=shift)
    if shift is not None:
        console.print(f"shift to the shifted regime at {shift.at.isoformat()}")
    if out is not None:
        n_events, n_leads = write_labeled_files(config, out, truth, now=now)
        console.print(
            f"wrote {n_events:,} events of {n_leads:,} leads to {out}"
            + (f", truth to {truth}" if truth else "")
        )
        return
    if truth is not None:
        raise ValueError("--truth needs --out (the truth of live traffic is not written)")
    asyncio.run(_publish_live(settings, config, rate, duration, console))


async def _publish_live(
    settings: Settings, config: SimConfig, rate: float, duration: float | None, console: Console
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def progress(stats: PublishStats) -> None:
        console.print(f"{stats.sent:,} events sent, {stats.rate_per_s:,.0f}/s", highlight=False)

    console.print(
        f"publishing to {settings.kafka_bootstrap} at {rate:,.0f} events/s (Ctrl-C stops)"
    )
    stats = await publish(
        Simulator(config).live_events(),
        settings,
        rate,
        duration_s=duration,
        stop=stop,
        progress=progress,
        progress_interval_s=5.0,
    )
    console.print(f"done: {stats.sent:,} events in {stats.elapsed_s:.1f} s")


async def tail_job(
    settings: Settings,
    *,
    topic: str,
    from_beginning: bool = False,
    limit: int | None = None,
) -> int:
    """Print a topic's records to stdout as JSON lines until Ctrl-C or ``limit`` records.

    Values that are JSON are printed as they are; anything else is printed as a JSON
    string. Returns the number of records printed.
    """

    consumer = new_consumer(
        settings, topic, auto_offset_reset="earliest" if from_beginning else "latest"
    )
    await consumer.start()
    printed = 0
    out = sys.stdout.buffer
    try:
        async for record in consumer:
            value = record.value or b""
            try:
                orjson.loads(value)
                line = value
            except orjson.JSONDecodeError:
                line = orjson.dumps(value.decode("utf-8", "replace"))
            out.write(line + b"\n")
            out.flush()
            printed += 1
            if limit is not None and printed >= limit:
                break
    finally:
        await stop_consumer(consumer)
    return printed
