"""Redis access: latest score per lead, the leaderboard, score history and worker counters.

Keys (``P`` is the configured prefix, ``leadscore:`` by default):

- ``P score:<lead_id>``    the latest published score event (JSON)
- ``P leaderboard``        sorted set: lead id -> probability x 100
- ``P history:<lead_id>``  list of published score events, newest first, capped
- ``P stats``              hash of counters: events, scores, dead_letters, duplicates, ...
- ``P state:<lead_id>``    the lead's feature state as of its last event (JSON; what
  ``POST /v1/score`` with only a lead id scores, and the dashboard shows)
- ``P activity:<lead_id>`` list of the lead's applied input events, newest first, capped
  (compact JSON ``{"id", "type", "time", "data"}``)
- ``P trends:<start>``     hash of one event-time bucket's score and outcome aggregates
  (fields: :mod:`leadscore.models.monitoring.trends`), expiring after the retention
- ``P trends:index``       sorted set of the bucket starts (member and score: epoch seconds)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leadscore.infra.privacy.crypto import Keyring
from leadscore.schemas.scores import LeadScored

#: Adds a batch's trend buckets: KEYS = bucket hashes; ARGV = TTL, then per key the number of
#: fields and (field, amount) pairs. An amount written with '.'/'e' is a sum (HINCRBYFLOAT),
#: else a count (HINCRBY). Each hash then expires after the TTL.
_ADD_TRENDS = """
local at = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  for i = at + 1, at + 2 * n, 2 do
    if string.find(ARGV[i + 1], '[.eEn]') then
      redis.call('HINCRBYFLOAT', KEYS[k], ARGV[i], ARGV[i + 1])
    else
      redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    end
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  at = at + 1 + 2 * n
end
return #KEYS
"""


def _bound(value: float, *, exclusive: bool = False) -> str:
    """A ZCOUNT bound; ``repr`` round-trips the float exactly (Redis parses it with strtod)."""
    if value == float("inf"):
        return "+inf"
    if value == float("-inf"):
        return "-inf"
    return f"({value!r}" if exclusive else repr(value)


def connect(
    url: str,
    *,
    retries: int = 5,
    max_connections: int = 64,
    wait_s: float = 10.0,
    connect_timeout_s: float = 5.0,
) -> aioredis.Redis:
    """An asyncio Redis client that retries a bounded number of times, then raises.

    Its pool holds at most ``max_connections``; a command that finds them all busy waits
    up to ``wait_s`` for one (redis-py's default pool fails at once past 100, which under a
    burst of API requests turned into errors instead of a short wait). The worker keeps
    the default retries (it holds its batch until Redis answers anyway); the API takes one
    retry and a short connect timeout, so a request fails fast while Redis is away.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_connect_timeout=connect_timeout_s,
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
        activity_length: input events kept per lead (0 keeps none).
        trends_retention_s: how long a trend bucket lives (wall clock, EXPIRE), and how far
            behind the newest bucket the index keeps buckets.
        keyring: seals the ``state:`` and ``activity:`` values (the lead id is the associated
            data) and opens them on read; ``None`` writes them plain.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "leadscore:",
        history_length: int = 100,
        *,
        activity_length: int = 50,
        trends_retention_s: int = 400 * 86_400,
        keyring: Keyring | None = None,
    ) -> None:
        self.client = client
        self.keyring = keyring
        self.prefix = prefix
        self.history_length = history_length
        self.activity_length = activity_length
        self.trends_retention_s = trends_retention_s
        self.leaderboard_key = f"{prefix}leaderboard"
        self.stats_key = f"{prefix}stats"
        self.trends_index_key = f"{prefix}trends:index"
        self._add_trends_script: Any = None  # registered on first use

    def score_key(self, lead_id: str) -> str:
        return f"{self.prefix}score:{lead_id}"

    def history_key(self, lead_id: str) -> str:
        return f"{self.prefix}history:{lead_id}"

    def state_key(self, lead_id: str) -> str:
        return f"{self.prefix}state:{lead_id}"

    def activity_key(self, lead_id: str) -> str:
        return f"{self.prefix}activity:{lead_id}"

    def trends_key(self, start_s: int) -> str:
        return f"{self.prefix}trends:{start_s}"

    async def write_batch(
        self,
        scores: Sequence[LeadScored],
        bodies: Sequence[bytes],
        counters: Mapping[str, int],
        states: Mapping[str, bytes] | None = None,
        activity: Mapping[str, Sequence[bytes]] | None = None,
        trends: Mapping[int, Mapping[str, float]] | None = None,
    ) -> None:
        """Write a batch's score events, lead states, counters, activity and trends in one round trip.

        Args:
            scores: the batch's score events, in publish order (the last per lead wins).
            bodies: each event as published (JSON bytes), so it is encoded once per batch.
            counters: amounts to add to the ``stats`` hash.
            states: lead id -> the lead's state as JSON (see :func:`public_state`).
            activity: lead id -> its applied events' entries, oldest first (the last ends up
                at the head of ``P activity:<lead_id>``).
            trends: bucket start (epoch s) -> field -> amount to add: HINCRBY for an int
                (a count), HINCRBYFLOAT for a float (a sum), in one script call; see
                :func:`leadscore.models.monitoring.trends.aggregate`.
        """
        pipe = self.client.pipeline(transaction=False)
        seal = self._seal
        if activity and self.activity_length:
            for lead_id, entries in activity.items():
                if entries:
                    pipe.lpush(self.activity_key(lead_id), *(seal(e, lead_id) for e in entries))
                    pipe.ltrim(self.activity_key(lead_id), 0, self.activity_length - 1)
        if trends:
            await self._add_trends(pipe, trends)
        if states:
            pipe.mset(
                {self.state_key(lead_id): seal(body, lead_id) for lead_id, body in states.items()}
            )
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

    async def _add_trends(self, pipe: Any, trends: Mapping[int, Mapping[str, float]]) -> None:
        # One script call for the batch's buckets: a catch-up batch spans many buckets (~30
        # fields each), and one pipeline command per field cost ~28 ms per 24 buckets in
        # redis-py against ~7 ms this way (measured; the worker is CPU-bound in Python).
        args: list[Any] = [self.trends_retention_s]
        for fields in trends.values():
            args.append(len(fields))
            for name, amount in fields.items():
                args += (name, str(amount) if isinstance(amount, int) else repr(float(amount)))
        if self._add_trends_script is None:
            self._add_trends_script = self.client.register_script(_ADD_TRENDS)
        await self._add_trends_script(
            keys=[self.trends_key(start) for start in trends], args=args, client=pipe
        )
        pipe.zadd(self.trends_index_key, {str(start): start for start in trends})
        # Only the batch's newest bucket is known here (no read in the pipeline); it is never
        # newer than the index's newest, so this never drops a bucket still in retention.
        pipe.zremrangebyscore(
            self.trends_index_key, "-inf", f"({max(trends) - self.trends_retention_s}"
        )

    async def forget_many(self, lead_ids: Sequence[str | None]) -> list[dict[str, int]]:
        """Delete everything kept under each lead's id (erasures), one round trip; for each
        lead id (``None``: unknown, nothing to delete), what went, by kind.

        Its latest score, score history, state, activity and its place on the leaderboard.
        The retention index is :class:`~leadscore.infra.privacy.lead_ids.LeadIds`'s, dead-letter
        keys :mod:`~leadscore.infra.privacy.dead_letters`'s, webhook deliveries the webhook
        store's; trends hold only sums over many leads.
        """
        kinds = ("score", "history", "state", "activity", "leaderboard")
        pipe = self.client.pipeline(transaction=False)
        known = [lead_id for lead_id in lead_ids if lead_id is not None]
        for lead_id in known:
            pipe.delete(self.score_key(lead_id))
            pipe.delete(self.history_key(lead_id))
            pipe.delete(self.state_key(lead_id))
            pipe.delete(self.activity_key(lead_id))
            pipe.zrem(self.leaderboard_key, lead_id)
        results = iter(await pipe.execute())
        return [
            {} if lead_id is None else {k: n for k in kinds if (n := int(next(results)))}
            for lead_id in lead_ids
        ]

    def _seal(self, value: bytes, lead_id: str) -> bytes:
        return value if self.keyring is None else self.keyring.seal(value, lead_id.encode())

    def _open(self, value: bytes | str, lead_id: str) -> bytes:
        raw = value.encode() if isinstance(value, str) else value
        return raw if self.keyring is None else self.keyring.open(raw, lead_id.encode())

    async def activity(self, lead_id: str, n: int = 50) -> list[dict[str, Any]]:
        """The lead's most recent ``n`` applied input events, newest first."""
        rows = await self.client.lrange(self.activity_key(lead_id), 0, n - 1)
        return [orjson.loads(self._open(row, lead_id)) for row in rows]

    async def count_between(self, bounds: Sequence[tuple[float, float]]) -> tuple[int, list[int]]:
        """The leaderboard's size and its members with ``low <= points < high`` per bound pair.

        One pipeline of ZCARD and one ZCOUNT per pair (O(pairs x log N)); use ``-inf``/``inf``
        for open ends.
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.leaderboard_key)
        for low, high in bounds:
            pipe.zcount(self.leaderboard_key, _bound(low), _bound(high, exclusive=True))
        total, *counts = await pipe.execute()
        return int(total), [int(count) for count in counts]

    async def trend_buckets(self, since_s: float, until_s: float) -> dict[int, dict[str, float]]:
        """The stored trend buckets starting in ``[since_s, until_s)``: start -> fields."""
        starts = cast(
            list[bytes],
            await self.client.zrangebyscore(self.trends_index_key, since_s, f"({until_s}"),
        )
        if not starts:
            return {}
        pipe = self.client.pipeline(transaction=False)
        numbers = [int(start) for start in starts]
        for start in numbers:
            pipe.hgetall(self.trends_key(start))
        rows = await pipe.execute()
        return {
            start: {name.decode(): float(value) for name, value in row.items()}
            for start, row in zip(numbers, rows)
            if row  # expired hash, index not yet trimmed
        }

    async def newest_trend_bucket(self) -> int | None:
        """The start of the newest stored trend bucket, or ``None`` when there is none."""
        rows = cast(list[bytes], await self.client.zrevrange(self.trends_index_key, 0, 0))
        return int(rows[0]) if rows else None

    async def state(self, lead_id: str) -> dict[str, Any] | None:
        """The lead's feature state as the worker last stored it, or ``None``."""
        raw = await self.client.get(self.state_key(lead_id))
        return orjson.loads(self._open(raw, lead_id)) if raw is not None else None

    async def latest_many(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The latest score event of each lead (``None`` where there is none), one MGET."""
        return await self._get_many([self.score_key(lead_id) for lead_id in lead_ids])

    async def states_many(self, lead_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """The stored state of each lead (``None`` where there is none), one MGET."""
        if not lead_ids:
            return []
        rows = await self.client.mget([self.state_key(lead_id) for lead_id in lead_ids])
        return [
            orjson.loads(self._open(row, lead_id)) if row is not None else None
            for lead_id, row in zip(lead_ids, rows, strict=True)
        ]

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
        rows = cast(
            list[tuple[bytes | str, float]],
            await self.client.zrevrange(
                self.leaderboard_key, offset, offset + n - 1, withscores=True
            ),
        )
        return [
            (key.decode() if isinstance(key, bytes) else key, float(score)) for key, score in rows
        ]

    async def history(self, lead_id: str, n: int = 100) -> list[dict[str, Any]]:
        rows = await self.client.lrange(self.history_key(lead_id), 0, n - 1)
        return [orjson.loads(row) for row in rows]

    async def stats(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self.client.hgetall(self.stats_key))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def count(self) -> int:
        return int(await self.client.zcard(self.leaderboard_key))
