"""A short-lived cache of latest scores in front of Redis, invalidated by score events.

A lead's entry lives ``ttl_s`` seconds at most, and is replaced as soon as this process
sees a score event for the lead on ``leads.scores.v1`` (via the WebSocket feed's consumer).
An entry read from Redis just before the worker's write can be stale for at most ``ttl_s``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from leadscore.infra.redis_store import ScoreStore
from leadscore.schemas.privacy import is_erased_event


class ScoreCache:
    """Latest score per lead, read through from Redis; bounded (LRU) and TTL'd.

    Args:
        store: where the scores are.
        ttl_s: how long an entry may be served (0 disables the cache).
        max_entries: entries kept; the least recently used go first.
    """

    def __init__(self, store: ScoreStore, ttl_s: float, max_entries: int = 100_000) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    async def latest(self, lead_id: str) -> dict[str, Any] | None:
        """The lead's latest score event, or ``None`` if it has none."""
        now = time.monotonic()
        entry = self._entries.get(lead_id)
        if entry is not None and now - entry[0] < self.ttl_s:
            self._entries.move_to_end(lead_id)
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = await self.store.latest(lead_id)
        if self.ttl_s > 0:
            self._entries[lead_id] = (now, value)
            self._entries.move_to_end(lead_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def on_score(self, event: dict[str, Any]) -> None:
        """A score event arrived: it replaces the lead's entry, if the lead is cached (a
        ``lead.erased`` event drops it).

        Replaced rather than dropped: the worker publishes to Kafka and writes Redis in the
        same batch, so for a moment Redis may still hold the previous score. Events of one
        lead arrive in order (one partition), so the event is the newest score.
        """
        lead_id = str(event.get("lead_id"))
        if is_erased_event(event):
            if self._entries.pop(lead_id, None) is not None:
                self.invalidations += 1
        elif lead_id in self._entries:
            self._entries[lead_id] = (time.monotonic(), event)
            self.invalidations += 1

    def forget(self, lead_id: str) -> None:
        """Drop the lead's entry (it was erased)."""
        self._entries.pop(lead_id, None)

    def __len__(self) -> int:
        return len(self._entries)
