"""Worker heartbeats in Redis: which workers are alive and when each last processed a batch.

Every worker writes ``{"seen", "last_batch"}`` to the hash ``<prefix>workers`` (field:
``host:pid``) every :data:`BEAT_S` seconds; the API reads it
for ``/readyz`` and ``/metrics``. A worker not seen for :data:`ALIVE_S` counts as gone;
entries a day old are removed.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson

#: Seconds between two heartbeats of a worker.
BEAT_S = 5.0
#: A worker not seen for this long is not alive.
ALIVE_S = 3 * BEAT_S
_FORGET_S = 86_400.0


def workers_key(prefix: str) -> str:
    return f"{prefix}workers"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def beat(client: Any, prefix: str, last_batch: float | None) -> None:
    """Say this worker is alive (and when it last processed a batch)."""
    body = {"seen": time.time(), "last_batch": last_batch}  # the field says which worker
    await client.hset(workers_key(prefix), worker_id(), orjson.dumps(body))


@dataclass(frozen=True)
class Workers:
    """What the heartbeats say."""

    alive: int
    last_seen_s: float | None  # seconds since any worker was last seen; None: never
    last_batch_s: float | None  # seconds since any worker last processed a batch

    def describe(self) -> str:
        """For ``/readyz``, e.g. ``"2 alive, last batch 0.4 s ago"``.

        Examples:
            >>> Workers(0, None, None).describe()
            'none seen'
            >>> Workers(0, 42.0, 50.0).describe()
            'none alive (last seen 42 s ago)'
            >>> Workers(2, 1.0, 0.44).describe()
            '2 alive, last batch 0.4 s ago'
        """
        if self.alive == 0:
            if self.last_seen_s is None:
                return "none seen"
            return f"none alive (last seen {self.last_seen_s:.0f} s ago)"
        batch = (
            "no batch yet"
            if self.last_batch_s is None
            else (f"last batch {self.last_batch_s:.1f} s ago")
        )
        return f"{self.alive} alive, {batch}"


async def read_workers(client: Any, prefix: str) -> Workers:
    """Count the live workers; forget entries a day old."""
    now = time.time()
    entries = await client.hgetall(workers_key(prefix))
    alive, seen, batch, stale = 0, None, None, []
    for field, raw in entries.items():
        try:
            body = orjson.loads(raw)
            ago = now - float(body["seen"])
        except (ValueError, KeyError, TypeError):
            stale.append(field)
            continue
        if ago > _FORGET_S:
            stale.append(field)
            continue
        alive += ago <= ALIVE_S
        seen = ago if seen is None else min(seen, ago)
        if body.get("last_batch") is not None:
            since = now - float(body["last_batch"])
            batch = since if batch is None else min(batch, since)
    if stale:
        await client.hdel(workers_key(prefix), *stale)
    return Workers(alive, seen, batch)
