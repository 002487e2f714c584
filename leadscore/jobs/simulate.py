"""The CLI's jobs: list/promote/roll back models, simulated traffic, tail a topic.

Training and file scoring live in :mod:`leadscore.jobs.train`.

Each job takes :class:`~leadscore.settings.Settings` and plain arguments, so the CLI,
the demo and tests call the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from leadscore.models.registry.store import ModelNotFoundError, ModelRegistry, RegistryError
from leadscore.schemas.models import ChampionChanged, ChampionChangeType, champion_changed
from leadscore.settings import Settings
from leadscore.simulation.shift import parse_shift_at, shift_regime
from leadscore.simulation.simulator import UTC, Shift, SimConfig, Simulator, write_labeled_files


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
    from leadscore.infra.kafka.publish import PublishStats, publish

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
    from aiokafka import AIOKafkaConsumer

    from leadscore.infra.kafka.client import client_options, stop_consumer

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
        await stop_consumer(consumer)
    return printed


# --- the model registry: list, show, promote, roll back ----------------------------------------

#: How many of the newest versions an error message suggests.
_SUGGESTED_VERSIONS = 5


class ModelCommandError(RuntimeError):
    """A ``leadscore models`` command cannot do what was asked; nothing was changed."""


@dataclass(frozen=True)
class ModelRow:
    """One line of ``leadscore models list``; metrics are ``None`` where the manifest has none."""

    version: str
    created_at: datetime | None
    n_rows: int | None
    roc_auc: float | None
    accuracy: float | None
    champion: bool
    problem: str | None = None  # why the manifest could not be read
    kind: str | None = None  # lead_events or table
    variant: str | None = None


@dataclass(frozen=True)
class ChampionChange:
    """What ``promote``/``rollback`` did: the pointer moved; the announcement may have failed."""

    event: ChampionChanged
    announce_error: str | None  # None: published on the model-events topic

    @property
    def changed(self) -> bool:
        return self.event.version != self.event.previous


def list_models(settings: Settings, *, segment: str | None = None) -> list[ModelRow]:
    """Every version in the registry, oldest first, marking the champion of ``segment``.

    An unreadable manifest gives a row with ``problem`` set instead of failing the list.
    """
    registry = ModelRegistry(settings.model_dir)
    # Only a promoted version is a champion here: the registry's fallback (its newest
    # version) may be a table model that no worker would use.
    champion = (
        registry.champion(segment=segment) if registry.champion_history(segment=segment) else None
    )
    rows = []
    for version in registry.list():
        try:
            manifest = registry.manifest(version)
        except (RegistryError, OSError) as exc:
            rows.append(ModelRow(version, None, None, None, None, version == champion, str(exc)))
            continue
        metrics = getattr(manifest, "metrics", None)
        rows.append(
            ModelRow(
                version=version,
                created_at=getattr(manifest, "created_at", None),
                n_rows=getattr(manifest, "n_rows", None),
                roc_auc=find_metric(metrics, "roc_auc"),
                accuracy=find_metric(metrics, "accuracy"),
                champion=version == champion,
                kind=getattr(manifest, "kind", None),
                variant=getattr(manifest, "variant", None),
            )
        )
    return rows


def find_metric(metrics: Any, name: str) -> float | None:
    """A manifest metric wherever the layout puts it, or ``None``.

    Looks at the top level, then under ``cv``, ``holdout``, ``test`` and
    ``validation``, then one level into any other mapping. A mapping value with a
    ``mean`` counts as that mean.

    Examples:
        >>> find_metric({"cv": {"roc_auc": 0.81}}, "roc_auc")
        0.81
        >>> find_metric({"roc_auc": {"mean": 0.7, "std": 0.1}}, "roc_auc")
        0.7
        >>> find_metric({"cv": {"brier": 0.1}}, "roc_auc") is None
        True
    """
    if not isinstance(metrics, Mapping):
        return None
    preferred = ("cv", "holdout", "test", "validation")
    places = [metrics, *(metrics[k] for k in preferred if k in metrics)]
    places += [v for k, v in metrics.items() if k not in preferred]
    for place in places:
        if not isinstance(place, Mapping) or name not in place:
            continue
        value = place[name]
        if isinstance(value, Mapping):
            value = value.get("mean")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def show_model(settings: Settings, version: str, *, full: bool = False) -> dict[str, Any]:
    """The manifest of ``version`` as JSON values; without the reference sample unless ``full``.

    Raises:
        ModelCommandError: no such version (the message lists the newest ones).
    """
    registry = ModelRegistry(settings.model_dir)
    try:
        manifest = registry.manifest(version)
    except ModelNotFoundError as exc:
        raise ModelCommandError(_with_newest(registry, str(exc))) from exc
    data = manifest.model_dump(mode="json")
    if not full:
        data.pop("reference_sample", None)
    return data


def promote_job(
    settings: Settings, version: str, *, segment: str | None = None, reason: str | None = None
) -> ChampionChange:
    """Make ``version`` the champion of ``segment``, then announce it on the model-events topic.

    The registry pointer is changed first: it is the source of truth, and a worker
    that misses the announcement still finds the new champion at its next poll.
    Promoting the current champion changes nothing and announces it again.

    Raises:
        ModelCommandError: no such version, or it cannot be loaded (nothing changed).
        ValueError: ``segment`` is not a valid segment name.
    """
    registry = ModelRegistry(settings.model_dir)
    try:
        registry.load(version)  # refuse here what every worker would refuse
    except ModelNotFoundError as exc:
        raise ModelCommandError(_with_newest(registry, str(exc))) from exc
    except RegistryError as exc:
        raise ModelCommandError(
            f"model {version} cannot be used, so it was not promoted: {exc}"
        ) from exc
    kind = registry.manifest(version).kind
    if kind == "table" and segment is None:
        raise ModelCommandError(
            f"model {version} was trained on a table (leadscore train --data): workers cannot build "
            "its features from lead events, so it cannot be the stream's champion. Promote it in "
            "the table segment: leadscore models promote --segment table " + version
        )
    if kind != "table" and segment == "table":
        raise ModelCommandError(
            f"model {version} scores lead events; the table segment holds models for CRM tables "
            "(leadscore score). Promote it without --segment."
        )
    previous = registry.champion(segment=segment)
    registry.promote(version, segment=segment)
    return _announce(settings, "model.promoted", version, previous, segment, reason)


def rollback_job(
    settings: Settings, *, segment: str | None = None, reason: str | None = None
) -> ChampionChange:
    """Restore the previous champion of ``segment``, then announce it on the model-events topic.

    Raises:
        ModelCommandError: there is no previous champion (nothing changed).
        ValueError: ``segment`` is not a valid segment name.
    """
    registry = ModelRegistry(settings.model_dir)
    previous = registry.champion(segment=segment)
    try:
        version = registry.rollback(segment=segment)
    except RegistryError as exc:
        raise ModelCommandError(
            f"{exc}: nothing was ever promoted over the current champion ({previous}). "
            + _with_newest(registry, "To use another version, promote it")
        ) from exc
    return _announce(settings, "model.rolled_back", version, previous, segment, reason)


def _announce(
    settings: Settings,
    type: ChampionChangeType,
    version: str,
    previous: str | None,
    segment: str | None,
    reason: str | None,
) -> ChampionChange:
    from leadscore.infra.model_events import ModelEventPublishError, publish_model_event

    event = champion_changed(
        type, version=version, previous=previous, segment=segment, reason=reason
    )
    try:
        asyncio.run(publish_model_event(settings, event))
    except ModelEventPublishError as exc:
        return ChampionChange(event, str(exc))
    return ChampionChange(event, None)


def _with_newest(registry: ModelRegistry, message: str) -> str:
    versions = registry.list()
    if not versions:
        return f"{message}. The registry {registry.root} is empty: train with `leadscore train`."
    newest = ", ".join(reversed(versions[-_SUGGESTED_VERSIONS:]))
    return f"{message}. Newest versions: {newest} (all: `leadscore models list`)."
