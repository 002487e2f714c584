"""The demo's live part: simulated traffic from this process, and a console view of the results.

The view, refreshed every second: events/s and scores/s (from the worker's counters in
Redis), dead letters, the top leads, the newest score changes, the latest drift window and
retrain decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from leadscore.infra.closed_loop_store import ClosedLoopKeys, read_closed_loop
from leadscore.infra.kafka.client import new_consumer, stop_consumer
from leadscore.infra.kafka.publish import PublishStats, publish
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds, decode_score
from leadscore.infra.redis_store import ScoreStore, connect
from leadscore.infra.retry import Outage
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

log = logging.getLogger(__name__)

_REFRESH_S = 1.0  # how often the view reads Redis


@dataclass
class _View:
    """What the live view shows, updated by the tasks of :func:`run_traffic_and_view`."""

    started: float = field(default_factory=time.monotonic)
    published: int = 0
    last: dict[str, int] = field(default_factory=dict)
    last_t: float = field(default_factory=time.monotonic)
    rates: dict[str, float] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    top: list[dict[str, Any]] = field(default_factory=list)
    changes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    drift: str = "no window tested yet"
    retrain: str = "none yet"
    problem: str = ""  # why the figures are not current, shown until they are again
    redis_outage: Outage = field(
        default_factory=lambda: Outage(log, "the demo's view could not read Redis", "trying again")
    )


async def run_traffic_and_view(
    settings: Settings, duration: float | None, rate: float, leads: int, console: Console
) -> None:
    """Publish simulated traffic at ``rate`` events/s and show the live view, until Ctrl-C
    (or SIGTERM) or ``duration`` seconds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)

    view = _View()
    store = ScoreStore(connect(settings.redis_url), settings.redis_prefix)
    await _refresh_or_say(view, store)

    def on_progress(stats: PublishStats) -> None:
        view.published = stats.sent

    simulator = Simulator(SimConfig(n_leads=leads, span_days=30.0, seed=int(time.time()) % 10_000))
    tasks = [
        asyncio.create_task(
            publish(
                simulator.live_events(),
                settings,
                rate,
                stop=stop,
                progress=on_progress,
                progress_interval_s=0.5,
            )
        ),
        asyncio.create_task(_follow_scores(settings, view, stop, store)),
    ]
    try:
        with Live(_render(view, rate), console=console, refresh_per_second=2) as live:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=_REFRESH_S)
                await _refresh_or_say(view, store)
                live.update(_render(view, rate))
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.client.aclose()


async def _follow_scores(
    settings: Settings, view: _View, stop: asyncio.Event, store: ScoreStore
) -> None:
    """Keep the newest score changes for the view (a group-less consumer from the end), with
    the lead ids the topic's pseudonyms stand for."""
    refs = LeadRefs.from_settings(settings)
    ids = LeadIds(store.client, settings.redis_prefix, plain_topics=refs.plain_topics, refs=refs)
    consumer = new_consumer(settings, settings.scores_topic, auto_offset_reset="latest")
    try:
        await consumer.start()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            events = [decode_score(r.value) for records in batches.values() for r in records]
            for event in await ids.resolve_events(events):
                if event is not None and event.get("type", "lead.scored") == "lead.scored":
                    view.changes.appendleft(event)
    finally:
        await stop_consumer(consumer)


async def _refresh_or_say(view: _View, store: ScoreStore) -> None:
    """Refresh the view; while Redis does not answer, say so in it and keep going.

    The worker waits for Redis and loses nothing meanwhile; the demo must not die for it
    (and take the embedded broker and Redis down with it).
    """
    try:
        await _refresh(view, store)
    except (RedisError, OSError) as exc:
        view.redis_outage.failed(exc, _REFRESH_S)
        if not view.problem:
            view.problem = f"Redis does not answer since {time.strftime('%H:%M:%S')} ({type(exc).__name__}): figures are stale; they come back when it does"
    else:
        view.redis_outage.over()
        view.problem = ""


async def _refresh(view: _View, store: ScoreStore) -> None:
    now = time.monotonic()
    stats = await store.stats()
    elapsed = max(now - view.last_t, 1e-6)
    for name in ("events", "scores", "dead_letters", "duplicates"):
        view.rates[name] = (stats.get(name, 0) - view.last.get(name, 0)) / elapsed
    view.last, view.last_t, view.totals = stats, now, stats
    top = await store.top(10)
    latest = await store.client.mget([store.score_key(lead) for lead, _ in top]) if top else []
    view.top = [orjson.loads(raw) for raw in latest if raw is not None]
    # The closed loop (docs/drift.md): the newest drift window and retrain decision.
    loop = await read_closed_loop(store.client, ClosedLoopKeys(store.prefix), events=1, decisions=1)
    for d in loop.events:
        features = ", ".join(d.get("report", {}).get("persistent_features", [])[:3])
        view.drift = f"{d['level']} (window {d['window_index']}, model {d['model_version']}){': ' + features if features else ''}"
    for r in loop.decisions:
        view.retrain = f"{r.get('outcome')} ({r.get('trigger')}): {str(r.get('reason', ''))[:90]}"


def _render(view: _View, rate: float) -> Group:
    up = time.monotonic() - view.started
    totals = view.totals
    summary = Table.grid(padding=(0, 3))
    summary.add_row(
        f"up [bold]{up:,.0f} s[/]",
        f"published [bold]{view.published:,}[/] (target {rate:,.0f}/s)",
        f"events [bold]{view.rates.get('events', 0):,.0f}/s[/]",
        f"scores [bold]{view.rates.get('scores', 0):,.0f}/s[/]",
        f"processed [bold]{totals.get('events', 0):,}[/]",
        f"score changes [bold]{totals.get('scores', 0):,}[/]",
        f"dead letters [bold]{totals.get('dead_letters', 0):,}[/]",
        f"duplicates [bold]{totals.get('duplicates', 0):,}[/]",
    )
    top = Table(title="top leads", expand=True)
    for column in ("lead", "score", "grade", "strongest reason"):
        top.add_column(column)
    for event in view.top:
        top.add_row(event["lead_id"], str(event["score"]), event["grade"], _reason(event))
    changes = Table(title="newest score changes", expand=True)
    for column in ("lead", "score", "grade", "strongest reason"):
        changes.add_column(column)
    for event in view.changes:
        before = event.get("previous_score")
        moved = f"{before} → {event['score']}" if before is not None else f"new: {event['score']}"
        grade = (
            event["grade"]
            if event.get("previous_grade") in (None, event["grade"])
            else (f"{event['previous_grade']} → {event['grade']}")
        )
        changes.add_row(event["lead_id"], moved, grade, _reason(event))
    loop = Table.grid(padding=(0, 3))
    if view.problem:
        loop.add_row(f"[bold red]{escape(view.problem)}[/]")
    loop.add_row(f"drift: [bold]{view.drift}[/]")
    loop.add_row(f"last retrain: [bold]{view.retrain}[/]")
    return Group(Panel(summary, title="leadscore demo — Ctrl-C to stop"), loop, top, changes)


def _reason(event: dict[str, Any]) -> str:
    reasons = event.get("reasons") or []
    if not reasons:
        return ""
    first = reasons[0]
    return f"{first['contribution']:+.0f}: {first.get('label') or first['feature']}"
