"""Redis access: latest score per lead, the leaderboard, score history and worker counters.

Keys (``P`` is the configured prefix, ``leadscore:`` by default):

- ``P score:<lead_id>``    the latest published score event (JSON)
- ``P leaderboard``        sorted set: lead id -> probability x 100
- ``P history:<lead_id>``  list of published score events, newest first, capped
- ``P stats``              hash of counters: events, scores, dead_letters, duplicates, ...
- ``P state:<lead_id>``    the lead's feature state as of its last event (JSON; what
  ``POST /v1/score`` with only a lead id scores, and the dashboard shows)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leadscore.schemas.scores import LeadScored


def connect(
    url: str, *, retries: int = 5, max_connections: int = 64, wait_s: float = 10.0
) -> aioredis.Redis:
    """An asyncio Redis client that retries a bounded number of times, then raises.

    Its pool holds at most ``max_connections``; a command that finds them all busy waits
    up to ``wait_s`` for one (redis-py's default pool fails at once past 100, which under a
    burst of API requests turned into errors instead of a short wait).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_connect_timeout=5,
        socket_timeout=10,
    )
    return aioredis.Redis(connection_pool=pool)


#: State fields left out of the Redis copy: the dedupe ids are big and only the worker needs
#: them (the changelogged table keeps the whole state).
_PRIVATE_STATE_FIELDS = ("seen_ids",)


def public_state(state: Mapping[str, Any]) -> bytes:
    """A lead state (``LeadState.to_dict()``) as the JSON kept in Redis."""
    return orjson.dumps({k: v for k, v in state.items() if k not in _PRIVATE_STATE_FIELDS})


class ScoreStore:
    """Reads and writes scores in Redis, one pipeline per batch.

    Args:
        client: an asyncio Redis client.
        prefix: prefix of every key.
        history_length: score events kept per lead (0 keeps none).
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "leadscore:", history_length: int = 100) -> None:
        self.client = client
        self.prefix = prefix
        self.history_length = history_length
        self.leaderboard_key = f"{prefix}leaderboard"
        self.stats_key = f"{prefix}stats"

    def score_key(self, lead_id: str) -> str:
        return f"{self.prefix}score:{lead_id}"

    def history_key(self, lead_id: str) -> str:
        return f"{self.prefix}history:{lead_id}"

    def state_key(self, lead_id: str) -> str:
        return f"{self.prefix}state:{lead_id}"

    async def write_batch(
        self,
        scores: Sequence[LeadScored],
        bodies: Sequence[bytes],
        counters: Mapping[str, int],
        states: Mapping[str, bytes] | None = None,
    ) -> None:
        """Write a batch's score events, lead states and counters in one round trip.

        Args:
            scores: the batch's score events, in publish order (the last per lead wins).
            bodies: each event as published (JSON bytes), so it is encoded once per batch.
            counters: amounts to add to the ``stats`` hash.
            states: lead id -> the lead's state as JSON (see :func:`public_state`).
        """
        pipe = self.client.pipeline(transaction=False)
        if states:
            pipe.mset({self.state_key(lead_id): body for lead_id, body in states.items()})
        if scores:
            latest: dict[str, bytes] = {}
            board: dict[str, float] = {}
            for event, body in zip(scores, bodies, strict=True):
                latest[self.score_key(event.lead_id)] = body
                board[event.lead_id] = event.probability * 100.0
                if self.history_length:
                    pipe.lpush(self.history_key(event.lead_id), body)
                    pipe.ltrim(self.history_key(event.lead_id), 0, self.history_length - 1)
            pipe.mset(latest)
            pipe.zadd(self.leaderboard_key, board)
        for name, amount in counters.items():
            if amount:
                pipe.hincrby(self.stats_key, name, amount)
        await pipe.execute()

    async def state(self, lead_id: str) -> dict[str, Any] | None:
        """The lead's feature state as the worker last stored it, or ``None``."""
        raw = await self.client.get(self.state_key(lead_id))
        return orjson.loads(raw) if raw is not None else None

    async def latest_many(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The latest score event of each lead (``None`` where there is none), one MGET."""
        return await self._get_many([self.score_key(lead_id) for lead_id in lead_ids])

    async def states_many(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored state of each lead (``None`` where there is none), one MGET."""
        return await self._get_many([self.state_key(lead_id) for lead_id in lead_ids])

    async def _get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        rows = await self.client.mget(keys)
        return [orjson.loads(row) if row is not None else None for row in rows]

    async def latest(self, lead_id: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.score_key(lead_id))
        return orjson.loads(raw) if raw is not None else None

    async def top(self, n: int = 10, offset: int = 0) -> list[tuple[str, float]]:
        """The ``n`` best leads from ``offset``, as (lead id, score) pairs."""
        rows = await self.client.zrevrange(self.leaderboard_key, offset, offset + n - 1, withscores=True)
        return [(key.decode() if isinstance(key, bytes) else key, float(score)) for key, score in rows]

    async def history(self, lead_id: str, n: int = 100) -> list[dict[str, Any]]:
        rows = await self.client.lrange(self.history_key(lead_id), 0, n - 1)
        return [orjson.loads(row) for row in rows]

    async def stats(self) -> dict[str, int]:
        raw = await self.client.hgetall(self.stats_key)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def count(self) -> int:
        return int(await self.client.zcard(self.leaderboard_key))
