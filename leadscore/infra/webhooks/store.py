"""Redis access for webhooks: subscriptions, per-(subscription, lead) delivery queues, the log.

Keys (``P`` is the configured prefix, ``S`` a subscription id, ``L`` a lead id):

- ``P webhooks``                 hash: S -> subscription JSON (with its secret)
- ``P webhooks:queue:S:L``       list of delivery ids, oldest first: one FIFO per
  (subscription, lead), so a lead's events reach a receiver in order
- ``P webhooks:due``             sorted set: ``S:L`` -> when its head is due (Unix ms), while
  its queue is not empty. A claim moves it to "now + lease": no two workers send one
  pair's head at once; a crashed worker's pairs come due again when the lease runs out.
- ``P webhooks:delivery:S:D``    a delivery's record JSON; a delivered one expires after the log TTL
- ``P webhooks:log:S``           sorted set: delivery id -> created (ms), the delivery log
- ``P webhooks:lead:S:L``        set: the (subscription, lead)'s delivery ids, for erasure
- ``P webhooks:dead:S``          sorted set: delivery id -> dead-lettered (ms)
- ``P stats``                    counters ``webhook_*`` (shared with the worker's others)

Every change of a queue, its schedule and a record happens in one Lua script
(:mod:`leadscore.infra.webhooks.store_scripts`), so a crash between two steps cannot lose or
reorder a delivery. All keys of one deployment must live on one Redis node (on a cluster,
put a hash tag in the prefix: ``{leadscore}:``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from leadscore.infra.webhooks.store_scripts import CLAIM, ENQUEUE, FINISH, HEAD, REPLAY, RETRY
from leadscore.schemas.webhooks import DeliveryRecord, DeliveryStatus, WebhookSubscription


@dataclass(frozen=True, slots=True)
class QueuedDelivery:
    """A delivery to queue: for which subscription and lead, and its first record."""

    subscription_id: str
    lead_id: str
    record: DeliveryRecord


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    """A Redis reply item as text (the client answers bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class WebhookStore:
    """Subscriptions, delivery queues and the delivery log in Redis.

    Args:
        client: an asyncio Redis client.
        prefix: prefix of every key (``settings.redis_prefix``).
        log_ttl_s: how long delivered deliveries stay in the log.
    """

    def __init__(
        self, client: aioredis.Redis, prefix: str = "leadscore:", log_ttl_s: float = 604_800.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.log_ttl_ms = int(log_ttl_s * 1000)
        self.subscriptions_key = f"{prefix}webhooks"
        self.due_key = f"{prefix}webhooks:due"
        self.stats_key = f"{prefix}stats"
        self._enqueue = client.register_script(ENQUEUE)
        self._claim = client.register_script(CLAIM)
        self._head = client.register_script(HEAD)
        self._retry = client.register_script(RETRY)
        self._finish = client.register_script(FINISH)
        self._replay = client.register_script(REPLAY)

    # --- keys ------------------------------------------------------------------------------------

    def queue_key(self, subscription_id: str, lead_id: str) -> str:
        """The FIFO of delivery ids of one (subscription, lead)."""
        return f"{self.prefix}webhooks:queue:{subscription_id}:{lead_id}"

    def lead_index_key(self, subscription_id: str, lead_id: str) -> str:  # erasure finds them
        return f"{self.prefix}webhooks:lead:{subscription_id}:{lead_id}"

    def record_key(self, subscription_id: str, delivery_id: str) -> str:
        """A delivery's record."""
        return f"{self.prefix}webhooks:delivery:{subscription_id}:{delivery_id}"

    def log_key(self, subscription_id: str) -> str:
        """The delivery log's index of a subscription."""
        return f"{self.prefix}webhooks:log:{subscription_id}"

    def dead_key(self, subscription_id: str) -> str:
        """The dead deliveries of a subscription."""
        return f"{self.prefix}webhooks:dead:{subscription_id}"

    @staticmethod
    def member(subscription_id: str, lead_id: str) -> str:
        """The due-set member of a (subscription, lead) pair (subscription ids hold no ``:``)."""
        return f"{subscription_id}:{lead_id}"

    @staticmethod
    def split_member(member: Any) -> tuple[str, str]:
        """``(subscription id, lead id)`` of a due-set member."""
        subscription_id, _, lead_id = _text(member).partition(":")
        return subscription_id, lead_id

    # --- subscriptions ---------------------------------------------------------------------------

    async def save_subscription(self, subscription: WebhookSubscription) -> None:
        """Create or replace a subscription."""
        await self.client.hset(
            self.subscriptions_key, subscription.id, subscription.model_dump_json()
        )

    async def subscription(self, subscription_id: str) -> WebhookSubscription | None:
        """One subscription, or ``None``."""
        raw = await self.client.hget(self.subscriptions_key, subscription_id)
        return WebhookSubscription.model_validate_json(raw) if raw is not None else None

    async def subscriptions(self) -> list[WebhookSubscription]:
        """Every subscription, oldest first."""
        raw = await self.client.hgetall(self.subscriptions_key)
        subs = [WebhookSubscription.model_validate_json(value) for value in raw.values()]
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    async def raw_subscriptions(self) -> dict[str, bytes]:
        """Every subscription as stored (id -> JSON), for callers that cache the parsing."""
        raw = await self.client.hgetall(self.subscriptions_key)
        return {_text(k): v if isinstance(v, bytes) else _text(v).encode() for k, v in raw.items()}

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription, its log and its delivery records; ``False`` if it was unknown.

        Its queues go when a worker next claims them (the delivery loop finds the
        subscription gone), so this stays a few round trips however long they are.
        """
        removed = await self.client.hdel(self.subscriptions_key, subscription_id)
        ids: set[str] = set()
        for key in (self.log_key(subscription_id), self.dead_key(subscription_id)):
            ids.update(_text(d) for d in await self.client.zrange(key, 0, -1))
        keys = [self.record_key(subscription_id, d) for d in ids]
        for start in range(0, len(keys), 500):
            await self.client.unlink(*keys[start : start + 500])
        await self.client.unlink(self.log_key(subscription_id), self.dead_key(subscription_id))
        return bool(removed)

    # --- the queues ------------------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[QueuedDelivery]) -> int:
        """Queue deliveries in order, one round trip; returns how many were new.

        A delivery whose id is already known (an event read twice from Kafka) is skipped,
        so queuing is idempotent. Within one (subscription, lead), order is call order.
        """
        if not deliveries:
            return 0
        now = _now_ms()
        pipe = self.client.pipeline(transaction=False)
        for item in deliveries:
            record = item.record
            await self._enqueue(
                keys=[
                    self.record_key(item.subscription_id, record.id),
                    self.queue_key(item.subscription_id, item.lead_id),
                    self.due_key,
                    self.log_key(item.subscription_id),
                    self.stats_key,
                    self.lead_index_key(item.subscription_id, item.lead_id),
                ],
                args=[
                    record.model_dump_json(),
                    record.id,
                    self.member(item.subscription_id, item.lead_id),
                    now,
                    self.log_ttl_ms,
                ],
                client=pipe,
            )
        results = await pipe.execute()
        return sum(int(r) for r in results)

    async def claim(self, limit: int, lease_s: float) -> list[tuple[str, str]]:
        """Take up to ``limit`` due (subscription, lead) pairs for ``lease_s`` seconds."""
        now = _now_ms()
        members = await self._claim(
            keys=[self.due_key], args=[now, now + int(lease_s * 1000), limit]
        )
        return [self.split_member(m) for m in members]

    async def head(
        self, subscription_id: str, lead_id: str
    ) -> tuple[WebhookSubscription | None, DeliveryRecord | None]:
        """A claimed pair's subscription and the delivery at the head of its queue.

        Cleans up as it goes: a pair whose subscription is gone loses its queue, an empty
        queue leaves the schedule, and a head whose record is missing is dropped.
        """
        raw_sub, raw_record = await self._head(
            keys=[self.subscriptions_key, self.queue_key(subscription_id, lead_id), self.due_key],
            args=[
                subscription_id,
                self.member(subscription_id, lead_id),
                self.record_key(subscription_id, ""),
                _now_ms(),
            ],
        )
        sub = WebhookSubscription.model_validate_json(raw_sub) if raw_sub else None
        record = DeliveryRecord.model_validate_json(raw_record) if raw_record else None
        return sub, record

    async def retry(
        self,
        subscription_id: str,
        lead_id: str,
        record: DeliveryRecord,
        due_at_s: float,
        *,
        failed_attempt: bool = True,
    ) -> bool:
        """Save the head's ``record`` and make its pair due at ``due_at_s`` (Unix seconds).

        Returns ``False`` when the subscription was deleted meanwhile (nothing is written).
        """
        done = await self._retry(
            keys=[
                self.subscriptions_key,
                self.record_key(subscription_id, record.id),
                self.due_key,
                self.stats_key,
            ],
            args=[
                subscription_id,
                record.model_dump_json(),
                self.member(subscription_id, lead_id),
                int(due_at_s * 1000),
                "webhook_attempts_failed" if failed_attempt else "",
            ],
        )
        return bool(done)

    async def postpone(self, subscription_id: str, lead_id: str, due_at_s: float) -> None:
        """Make a claimed pair due at ``due_at_s`` without touching its records (paused)."""
        member = self.member(subscription_id, lead_id)
        await self.client.zadd(self.due_key, {member: int(due_at_s * 1000)}, xx=True)

    async def finish(self, subscription_id: str, lead_id: str, record: DeliveryRecord) -> bool:
        """Settle the head delivery as delivered or dead: save it, pop it, schedule the next.

        Returns ``False`` when the subscription was deleted meanwhile (nothing is written).
        """
        dead = record.status == "dead"
        now = _now_ms()
        done = await self._finish(
            keys=[
                self.subscriptions_key,
                self.record_key(subscription_id, record.id),
                self.queue_key(subscription_id, lead_id),
                self.due_key,
                self.dead_key(subscription_id),
                self.log_key(subscription_id),
                self.stats_key,
                self.lead_index_key(subscription_id, lead_id),
            ],
            args=[
                subscription_id,
                record.model_dump_json(),
                record.id,
                self.member(subscription_id, lead_id),
                now,
                0 if dead else self.log_ttl_ms,
                "1" if dead else "0",
                now - self.log_ttl_ms,
                "webhook_deliveries_dead_lettered" if dead else "webhook_deliveries_delivered",
            ],
        )
        return bool(done)

    async def release(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Make claimed pairs due now (a worker stopping hands its leases back)."""
        if pairs:
            now = _now_ms()
            members = {self.member(sub, lead): now for sub, lead in pairs}
            await self.client.zadd(self.due_key, members, xx=True)

    # --- the log and replays ---------------------------------------------------------------------

    async def delivery(self, subscription_id: str, delivery_id: str) -> DeliveryRecord | None:
        """One delivery's record, or ``None``."""
        raw = await self.client.get(self.record_key(subscription_id, delivery_id))
        return DeliveryRecord.model_validate_json(raw) if raw is not None else None

    async def deliveries(
        self,
        subscription_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> tuple[list[DeliveryRecord], str | None]:
        """A page of the log, newest first, and the cursor of the next page (``None``: last).

        ``status="dead"`` reads the dead-letter set (dead deliveries are kept until replayed,
        even after the log forgot them); other statuses filter the log. A cursor is
        ``<ms>-<delivery id>`` of the last row shown, so rows with the same time are not lost.

        Raises:
            ValueError: ``cursor`` is not one this method gave out.
        """
        key = self.dead_key(subscription_id) if status == "dead" else self.log_key(subscription_id)
        after: tuple[int, str] | None = None
        if cursor is not None:
            at, sep, last_id = cursor.partition("-")
            if not sep or not at.isdigit() or not last_id:
                raise ValueError(f"cursor {cursor!r} is not a cursor from a previous page")
            after = (int(at), last_id)
        top = str(after[0]) if after else "+inf"
        found: list[DeliveryRecord] = []
        gone: list[str] = []
        offset, chunk = 0, max(limit, 50)
        next_cursor: str | None = None
        while True:
            page = cast(
                list[tuple[bytes, float]],
                await self.client.zrevrangebyscore(
                    key, top, "-inf", start=offset, num=chunk, withscores=True
                ),
            )
            offset += len(page)
            # Members of one score come in descending id order: skip up to the cursor's id.
            rows = [
                (member, score)
                for member, score in ((_text(m), int(s)) for m, s in page)
                if after is None or score < after[0] or member < after[1]
            ]
            keys = [self.record_key(subscription_id, member) for member, _ in rows]
            raws = await self.client.mget(keys) if keys else []
            for (member, score), raw in zip(rows, raws):
                if raw is None:  # a delivered record expired: forget it in the log too
                    gone.append(member)
                    continue
                record = DeliveryRecord.model_validate_json(raw)
                if status is None or record.status == status:
                    found.append(record)
                    if len(found) == limit:
                        next_cursor = f"{score}-{member}"
                        break
            if next_cursor is not None or len(page) < chunk:
                break
        if gone:
            await self.client.zrem(self.log_key(subscription_id), *gone)
        return found, next_cursor

    async def dead_ids(self, subscription_id: str, limit: int) -> list[str]:
        """Ids of dead deliveries, oldest first."""
        rows = await self.client.zrange(self.dead_key(subscription_id), 0, limit - 1)
        return [_text(row) for row in rows]

    async def replay(self, subscription_id: str, record: DeliveryRecord) -> int:
        """Queue a delivered or dead delivery again, behind what its lead has queued.

        Args:
            subscription_id: its subscription.
            record: the record to store: the delivery as it is now, set back to pending.

        Returns:
            1 queued again, 0 it is still pending (nothing done), -1 no such delivery.
        """
        now = _now_ms()
        result = await self._replay(
            keys=[
                self.record_key(subscription_id, record.id),
                self.queue_key(subscription_id, record.lead_id),
                self.due_key,
                self.dead_key(subscription_id),
                self.log_key(subscription_id),
                self.lead_index_key(subscription_id, record.lead_id),
            ],
            args=[
                record.model_dump_json(),
                record.id,
                self.member(subscription_id, record.lead_id),
                now,
            ],
        )
        return int(result)

    async def stats(self) -> dict[str, int]:
        """The ``webhook_*`` counters."""
        raw = await self.client.hgetall(self.stats_key)
        counters = {_text(k): int(v) for k, v in raw.items()}
        return {k: v for k, v in counters.items() if k.startswith("webhook_")}

    async def backlog(self) -> int:
        """(Subscription, lead) pairs with deliveries waiting."""
        return int(await self.client.zcard(self.due_key))
