"""Webhooks, delivery: claim due (subscription, lead) pairs, send each head, retry or dead-letter.

Loop 2 of :mod:`leadscore.infra.webhooks.worker` (which has the overview and the guarantee); the
signed request itself is in :mod:`leadscore.infra.webhooks.http`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# aiokafka ships no type information (no py.typed, no stubs)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from redis.exceptions import RedisError

from leadscore.infra.kafka.client import client_options
from leadscore.infra.kafka.retention import topic_configs
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.retry import Backoff
from leadscore.infra.webhooks.addresses import AddressPolicy
from leadscore.infra.webhooks.forget import forget_delivery, is_erasure_notice
from leadscore.infra.webhooks.http import ClientSlots, address_policy, post_signed
from leadscore.infra.webhooks.retry_schedule import (
    next_attempt_delay,
    retry_delays,
    retry_delays_summary,
)
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.schemas.webhooks import DeliveryRecord, WebhookDeadLettered, WebhookSubscription
from leadscore.settings import Settings

log = logging.getLogger(__name__)

#: Sends one record: (topic, key, value) -> acknowledged. The worker passes Faust's producer.
SendRecord = Callable[[str, bytes, bytes], Awaitable[Any]]

#: How often an idle delivery loop looks for due deliveries queued by other workers or
#: coming due after a backoff (queuing in this worker wakes it at once).
POLL_S = 0.25
#: A paused (disabled) subscription's pairs are looked at again after this long.
PAUSED_RECHECK_S = 10.0
#: A dead letter that could not be published is tried again after this long.
DEAD_LETTER_RETRY_S = 10.0
#: Attempts kept in a delivery's record (older ones are dropped; the count goes on).
MAX_KEPT_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are sent and retried, from the ``webhook_*`` settings."""

    max_attempts: int
    delays: tuple[float, ...]
    timeout_s: float
    concurrency: int
    addresses: AddressPolicy
    dead_letter_topic: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        """The policy the settings ask for."""
        return cls(
            max_attempts=settings.webhook_max_attempts,
            delays=tuple(
                retry_delays(
                    settings.webhook_max_attempts,
                    settings.webhook_first_retry_s,
                    settings.webhook_retry_horizon_s,
                )
            ),
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
            addresses=address_policy(settings),
            dead_letter_topic=settings.webhook_dead_letter_topic,
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed pair stays with its worker: well over one attempt (DNS + HTTP)."""
        return 2 * self.timeout_s + 30.0


async def cancel_until_done(task: asyncio.Task[Any], retry_s: float = 1.0) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancellation is lost.

    On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives as its inner
    call completes (CPython gh-86296, fixed in 3.12), and redis-py wraps every command in it:
    a delivery loop cancelled during a Redis call then runs on (seen in 2 of ~55 drains).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r while being cancelled", task.get_name(), task.exception())


class WebhookDeliverer:
    """Claims due (subscription, lead) pairs and delivers the head of each.

    How the loop works and what it guarantees: see :mod:`leadscore.infra.webhooks.worker`.

    Any number of deliverers (one per worker) can share one Redis: a claimed pair is
    leased to one of them, and a lease that runs out (its worker died) frees the pair.

    Args:
        store: the webhook store.
        policy: retries, timeouts, concurrency and address rules.
        send: publishes a dead letter and returns once the broker acknowledged it.
        rng: the jitter's random source.
    """

    def __init__(
        self,
        store: WebhookStore,
        policy: DeliveryPolicy,
        send: SendRecord,
        *,
        rng: random.Random | None = None,
        refs: LeadRefs | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.send = send
        self.refs = refs  # dead letters on the topic name the lead by it (docs/privacy.md)
        self.clients: ClientSlots | None = None
        self.rng = rng or random.Random()
        self.delays = list(policy.delays)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now (something was just queued)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; on the way out, hand claimed pairs back and close the clients."""
        self.clients = ClientSlots(self.policy.concurrency, self.policy.timeout_s)
        inflight: dict[asyncio.Task[None], tuple[str, str]] = {}
        waker: asyncio.Future[Any] | None = None
        redis_backoff = Backoff(0.2, 10.0)
        log.info(
            "webhook delivery: up to %d in flight, %d attempts, retries after %s",
            self.policy.concurrency, self.policy.max_attempts,
            retry_delays_summary(self.delays) or "none",
        )  # fmt: skip
        try:
            while True:
                self._wake.clear()
                free = self.policy.concurrency - len(inflight)
                try:
                    pairs = await self.store.claim(free, self.policy.lease_s) if free > 0 else []
                    redis_backoff.reset()
                except RedisError as exc:  # Redis down: deliveries wait in it, nothing is lost
                    pause = redis_backoff.next()
                    log.warning(
                        "webhook delivery cannot reach Redis (%r); retrying in %.1f s", exc, pause
                    )
                    await asyncio.sleep(pause)
                    continue
                for pair in pairs:
                    inflight[asyncio.create_task(self.deliver(*pair), name="webhook-delivery")] = (
                        pair
                    )
                waiting: set[asyncio.Future[Any]] = set(inflight)
                waker = None
                if not (pairs and len(pairs) == free):
                    # Not at capacity, so nothing more is due now: wait for a slot, new work
                    # queued here (wake) or the next poll. At capacity: for a slot only.
                    waker = asyncio.ensure_future(self._wake.wait())
                    waiting.add(waker)
                done, _ = await asyncio.wait(
                    waiting,
                    timeout=None if waker is None else POLL_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if waker is not None:
                    waker.cancel()
                for task in inflight.keys() & done:
                    self._reap(task, inflight.pop(task))
        finally:
            if waker is not None:
                waker.cancel()  # else "Task was destroyed but it is pending" at exit
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)
            try:
                await asyncio.wait_for(self.store.release(list(inflight.values())), 2.0)
            except (RedisError, TimeoutError) as exc:  # the leases run out on their own
                log.warning("could not hand back %d webhook leases (%r)", len(inflight), exc)
            await self.clients.aclose()
            self.clients = None

    async def drain(self, timeout_s: float) -> None:
        """Deliver until nothing is queued (or ``timeout_s`` passed): for benchmarks and tools."""
        task = asyncio.create_task(self.run())
        deadline = time.monotonic() + timeout_s
        try:
            # polls the backlog in Redis: no in-process event to wait on
            while time.monotonic() < deadline and await self.store.backlog() > 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            await cancel_until_done(task)

    def _reap(self, task: asyncio.Task[None], pair: tuple[str, str]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, RedisError):
            log.warning(
                "webhook delivery of %s stopped on a Redis error (%r); retried when its "
                "lease runs out",
                pair,
                exc,
            )
        elif exc is not None:
            log.error(
                "webhook delivery of %s failed; retried when its lease runs out (%.0f s)",
                pair,
                self.policy.lease_s,
                exc_info=exc,
            )

    async def deliver(self, subscription_id: str, lead_id: str) -> None:
        """Attempt the head delivery of one claimed pair, and settle it."""
        sub, record = await self.store.head(subscription_id, lead_id)
        if sub is None or record is None:
            return  # the subscription was deleted, or the queue emptied: cleaned up in Redis
        if not sub.enabled:
            await self.store.postpone(subscription_id, lead_id, time.time() + PAUSED_RECHECK_S)
            return
        if record.round_attempts >= self.policy.max_attempts:  # out of attempts, letter not out yet
            await self._dead_letter(sub, record)
            return
        if self.clients is None:
            raise RuntimeError(
                "WebhookDeliverer.deliver() runs inside run(), which opens the clients"
            )
        client = self.clients.lend()
        try:
            outcome = await post_signed(
                client, sub.url, sub.secret, record.webhook_id, record.body.encode(),
                self.policy.addresses, self.policy.timeout_s,
            )  # fmt: skip
        finally:
            self.clients.give_back(client)
        number = (record.attempts[-1].number if record.attempts else 0) + 1
        record = record.model_copy(
            update={
                "attempts": [
                    *record.attempts[-(MAX_KEPT_ATTEMPTS - 1) :],
                    outcome.as_attempt(number),
                ],
                "round_attempts": record.round_attempts + 1,
                "next_attempt_at": None,
            }
        )
        now = datetime.now(UTC)
        if outcome.ok:
            await self.store.finish(
                subscription_id,
                lead_id,
                record.model_copy(update={"status": "delivered", "delivered_at": now}),
            )
            if is_erasure_notice(record.webhook_id):  # delivered: nothing of the lead stays
                await forget_delivery(self.store, subscription_id, lead_id, record.id)
            return
        delay = next_attempt_delay(record.round_attempts, self.delays, self.rng)
        if delay is None:
            await self._dead_letter(sub, record)
            return
        due = time.time() + delay
        log.debug(
            "webhook %s to %s failed (attempt %d: %s); retrying in %.1f s",
            record.id,
            sub.url,
            number,
            outcome.error,
            delay,
        )
        await self.store.retry(
            subscription_id, lead_id,
            record.model_copy(update={"next_attempt_at": datetime.fromtimestamp(due, UTC)}), due,
        )  # fmt: skip

    async def _dead_letter(self, sub: WebhookSubscription, record: DeliveryRecord) -> None:
        """Publish the delivery on the dead-letter topic, then mark it dead (its lead moves on).

        The letter goes first: if the broker cannot take it, the delivery stays at the head
        of its queue and the letter is tried again (so it may go out twice, never zero times).
        """
        now = datetime.now(UTC)
        last_error = record.attempts[-1].error if record.attempts else None
        # On the topic the lead goes by its pseudonym (Redis keeps the delivery as sent, to
        # replay it, until the lead is erased).
        ref = self.refs.topic(record.lead_id) if self.refs is not None else record.lead_id
        payload = orjson.loads(record.body)
        if isinstance(payload.get("data"), dict) and "lead_id" in payload["data"]:
            payload["data"]["lead_id"] = ref
        letter = WebhookDeadLettered(
            subscription_id=sub.id,
            url=sub.url,
            delivery_id=record.id,
            webhook_id=record.webhook_id,
            lead_id=ref,
            attempts=record.attempts,
            last_error=last_error,
            payload=payload,
            dead_lettered_at=now,
        )
        try:
            await asyncio.wait_for(
                self.send(self.policy.dead_letter_topic, ref.encode(),
                          orjson.dumps(letter.model_dump(mode="json"))),
                30.0,
            )  # fmt: skip
        except Exception as exc:  # whatever the producer raises: keep the delivery, try later
            due = time.time() + DEAD_LETTER_RETRY_S
            log.warning(
                "could not publish dead letter of webhook %s on %s (%r); trying again in %.0f s",
                record.id,
                self.policy.dead_letter_topic,
                exc,
                DEAD_LETTER_RETRY_S,
            )
            await self.store.retry(sub.id, record.lead_id, record, due, failed_attempt=False)
            return
        log.warning(
            "webhook %s to %s dead-lettered after %d attempts: %s",
            record.id,
            sub.url,
            record.round_attempts,
            last_error,
        )
        await self.store.finish(
            sub.id, record.lead_id,
            record.model_copy(update={"status": "dead", "dead_lettered_at": now, "next_attempt_at": None}),
        )  # fmt: skip


async def ensure_dead_letter_topic(settings: Settings) -> None:
    """Create ``webhook_dead_letter_topic`` (lead-keyed, ``topic_partitions`` partitions,
    the dead letters' retention) if missing.

    A broker that cannot be reached is logged and left: the delivery loop does not need
    the broker, and a dead letter that cannot be published waits in Redis.
    """
    topic = settings.webhook_dead_letter_topic
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        if topic not in set(await admin.list_topics()):
            await admin.create_topics(
                [NewTopic(topic, num_partitions=settings.topic_partitions,
                          replication_factor=settings.topic_replication,
                          topic_configs=topic_configs(settings, topic))]
            )  # fmt: skip
            log.info("created topic %s", topic)
    except TopicAlreadyExistsError:  # another worker won the race
        pass
    except (KafkaError, OSError) as exc:
        log.warning("could not check or create %s (%r); dead letters will wait for it", topic, exc)
    finally:
        await admin.close()
