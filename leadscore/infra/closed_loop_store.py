"""The closed loop's records in Redis: drift reports, live performance, retrain decisions, the lock.

The drift agent writes the reports and performance summaries, every retrain appends its
decision, and the API, the CLI and the demo read them all through :func:`read_closed_loop`.
Keys, under the settings' prefix:

- ``drift:events``: list of ``DriftEvent`` JSON, newest first (the newest 500 kept);
- ``drift:latest``: hash, model version -> its newest ``DriftEvent`` JSON;
- ``drift:performance``: hash, model version -> its live-performance summary JSON;
- ``drift:state:<version>``, ``drift:performance_state:<version>``: the agent's own state;
- ``retrain:decisions``: list of decision records, newest first (the newest 200 kept);
- ``retrain:lock``: held (with a token) while a retrain runs, whoever started it;
- ``retrain:new_labels``, ``retrain:last_started``: the worker's retrain triggers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: Drift events kept in ``drift:events``.
KEPT_DRIFT_EVENTS = 500
#: Decisions kept in ``retrain:decisions``.
KEPT_DECISIONS = 200

#: Lua: release the retrain lock only if it still holds our token.
RELEASE_LOCK = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class ClosedLoopKeys:
    """The Redis keys of the closed loop (all under ``prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events = f"{prefix}drift:events"
        self.latest = f"{prefix}drift:latest"
        self.performance = f"{prefix}drift:performance"
        self.decisions = f"{prefix}retrain:decisions"
        self.lock = f"{prefix}retrain:lock"
        self.new_labels = f"{prefix}retrain:new_labels"
        self.last_started = f"{prefix}retrain:last_started"

    def performance_state(self, version: str) -> str:
        return f"{self.prefix}drift:performance_state:{version}"

    def state(self, version: str) -> str:
        return f"{self.prefix}drift:state:{version}"


@dataclass
class ClosedLoopView:
    """What :func:`read_closed_loop` read (only the parts asked for are filled)."""

    latest: dict[str, Any] = field(default_factory=dict)  # model version -> newest drift event
    events: list[dict[str, Any]] = field(default_factory=list)  # drift events, newest first
    performance: dict[str, Any] = field(default_factory=dict)  # model version -> summary
    decisions: list[dict[str, Any]] = field(default_factory=list)  # newest first


async def read_closed_loop(
    redis: Any,
    keys: ClosedLoopKeys,
    *,
    latest: bool = False,
    events: int = 0,
    performance: bool = False,
    decisions: int = 0,
) -> ClosedLoopView:
    """Read the parts asked for in one round trip.

    Args:
        redis: an asyncio Redis client.
        keys: the keys to read.
        latest: the newest drift event of each model version.
        events: this many newest drift events.
        performance: each model version's live-performance summary.
        decisions: this many newest retrain decisions.

    A value that does not decode is left out (and logged): a reader never fails on one.
    """
    pipe = redis.pipeline(transaction=False)
    parts = []
    if latest:
        pipe.hgetall(keys.latest)
        parts.append("latest")
    if events:  # LRANGE 0 -1 would read the whole list only to drop it
        pipe.lrange(keys.events, 0, events - 1)
        parts.append("events")
    if performance:
        pipe.hgetall(keys.performance)
        parts.append("performance")
    if decisions:
        pipe.lrange(keys.decisions, 0, decisions - 1)
        parts.append("decisions")
    view = ClosedLoopView()
    if not parts:
        return view
    for part, raw in zip(parts, await pipe.execute(), strict=True):
        where = getattr(keys, part)
        if part in ("latest", "performance"):
            setattr(view, part, _decoded_hash(raw, where))
        else:
            setattr(view, part, _decoded(raw, where))
    return view


def _decoded(values: list[bytes], where: str) -> list[Any]:
    out = []
    for raw in values:
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            log.warning("an undecodable value in %s was left out: %r", where, raw[:80])
    return out


def _decoded_hash(mapping: dict[bytes, bytes], where: str) -> dict[str, Any]:
    out = {}
    for key, raw in sorted(mapping.items()):
        try:
            out[key.decode()] = orjson.loads(raw)
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            log.warning("an undecodable value in %s (%r) was left out", where, key[:80])
    return out
