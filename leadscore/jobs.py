"""The CLI's jobs: train a model, publish or write simulated traffic, tail a topic.

Each job takes :class:`~leadscore.settings.Settings` and plain arguments, so the CLI,
the demo and tests call the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from leadscore.models.dataset import build_training_set
from leadscore.models.registry import Manifest, ModelRegistry
from leadscore.models.simulation import SimConfig, Simulator, read_jsonl, write_labeled_files
from leadscore.models.training import train_model
from leadscore.settings import Settings

#: Days of simulated history to train on: enough that most snapshots have a full
#: conversion horizon after them.
TRAIN_SPAN_DAYS = 120.0


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_job` produced."""

    version: str
    manifest: Manifest
    metrics: dict[str, Any]
    promoted: bool


def train_job(
    settings: Settings,
    *,
    leads: int = 4000,
    events: Path | None = None,
    horizon_days: float = 30.0,
    seed: int = 0,
    cv_folds: int = 5,
    promote: bool = True,
    console: Console | None = None,
) -> TrainResult:
    """Build a point-in-time training set, cross-validate and fit the ensemble, save it.

    Args:
        settings: where the registry lives (``model_dir``).
        leads: simulated leads, when ``events`` is not given.
        events: a JSON-lines file of CloudEvents (e.g. from ``leadscore simulate --out``
            or an export of the input topics) to train on instead.
        horizon_days: a snapshot is labeled positive if the lead converts within this.
        seed: seeds the simulation, the snapshots, the folds and the models.
        cv_folds: folds of the lead-grouped stratified cross-validation.
        promote: make the new version the champion.
        console: where to print (default: stderr).

    Raises:
        InsufficientDataError: the data hold too few conversions to train on.
        ValueError: a record of ``events`` is not a valid lead event.
    """
    console = console or Console(stderr=True)
    if events is not None:
        console.print(f"reading events from [bold]{events}[/]")
        source: Any = read_jsonl(events)
    else:
        console.print(f"simulating {leads:,} leads over {TRAIN_SPAN_DAYS:.0f} days (seed {seed})")
        source = Simulator(SimConfig(n_leads=leads, span_days=TRAIN_SPAN_DAYS, seed=seed)).events()
    training_set = build_training_set(source, horizon_days=horizon_days, seed=seed)
    balance = training_set.class_balance
    console.print(
        f"training set: {len(training_set):,} point-in-time snapshots of "
        f"{len(set(training_set.lead_ids)):,} leads from {training_set.n_events:,} events; "
        f"positive rate {balance['positive_rate']:.1%}"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        model, metrics = train_model(training_set, seed=seed, cv_folds=cv_folds, progress=progress)

    registry = ModelRegistry(settings.model_dir)
    manifest = registry.save(
        model,
        metrics=metrics,
        training_window=training_set.training_window,
        n_rows=len(training_set),
        class_balance=balance,
        params=metrics.get("params"),
        reference_sample=training_set.reference_sample(seed=seed),
    )
    if promote:
        registry.promote(manifest.version)
    cv = metrics["cv"]
    console.print(
        f"model [bold]{manifest.version}[/] saved to {settings.model_dir}"
        f"{' and promoted to champion' if promote else ''}\n"
        f"cross-validated ({cv_folds} folds, grouped by lead): ROC-AUC {cv['roc_auc']:.3f}, "
        f"PR-AUC {cv['pr_auc']:.3f}, accuracy {cv['accuracy']:.3f} "
        f"(always-negative baseline {1 - balance['positive_rate']:.3f}), Brier {cv['brier']:.3f}"
    )
    return TrainResult(manifest.version, manifest, metrics, promote)


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
) -> None:
    """Publish live simulated traffic to Kafka, or write a labeled event file.

    With ``out``, one run of ``leads`` leads over ``days`` days is written as JSON
    lines (and each lead's hidden truth to ``truth`` as CSV); nothing is published.
    Otherwise cohorts of ``leads`` leads are published at ``rate`` events/s until
    ``duration`` seconds pass or Ctrl-C.
    """
    console = console or Console(stderr=True)
    config = SimConfig(n_leads=leads, span_days=days, seed=seed)
    if out is not None:
        n_events, n_leads = write_labeled_files(config, out, truth)
        console.print(f"wrote {n_events:,} events of {n_leads:,} leads to {out}"
                      + (f", truth to {truth}" if truth else ""))
        return
    if truth is not None:
        raise ValueError("--truth needs --out (the truth of live traffic is not written)")
    asyncio.run(_publish_live(settings, config, rate, duration, console))


async def _publish_live(
    settings: Settings, config: SimConfig, rate: float, duration: float | None, console: Console
) -> None:
    from leadscore.streams.producer import PublishStats, publish

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def progress(stats: PublishStats) -> None:
        console.print(f"{stats.sent:,} events sent, {stats.rate_per_s:,.0f}/s", highlight=False)

    console.print(f"publishing to {settings.kafka_bootstrap} at {rate:,.0f} events/s (Ctrl-C stops)")
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
    from aiokafka import AIOKafkaConsumer

    from leadscore.streams.kafka import client_options

    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
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
        await consumer.stop()
    return printed
