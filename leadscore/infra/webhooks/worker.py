"""Webhooks in the worker: queue score events per subscription in Redis, deliver them signed.

Two loops, joined only by Redis (:mod:`leadscore.infra.webhooks.store`):

1. **Queueing** (an agent on ``leads.scores.v1``): each micro-batch of score events is
   matched against the subscriptions and every match is appended, in one round trip, to the
   FIFO of its (subscription, lead). Only then does the agent return, and Faust commits the
   batch's offsets: a crash before that reads the batch again, and queuing is idempotent
   (delivery ids are derived from the subscription and the event id). The agent never
   waits on a receiver.
2. **Delivery** (a task): claims due (subscription, lead) pairs with a lease, POSTs the head
   of each queue with httpx, and on a 2xx moves on to the pair's next delivery. A failure
   schedules the pair's retry (exponential backoff with jitter, sized to the retry
   horizon) and leaves its later deliveries waiting behind it; other pairs carry on. After
   the last attempt the delivery is published on ``webhooks.dead-letter.v1``, kept in Redis
   as ``dead`` (replayable through the API), and the pair's next delivery goes.

Guarantee: at least once per (subscription, score event), in order per (subscription,
lead). A delivery can repeat (a worker dies after the receiver answered, before Redis
heard of it; a replay), never with another ``webhook-id``: receivers drop repeats by it.

The parts: :mod:`leadscore.infra.webhooks.queue` (queueing),
:mod:`leadscore.infra.webhooks.delivery` (the delivery loop and its dead letters) and
:mod:`leadscore.infra.webhooks.http` (one signed request to a checked address). This module
wires them into the worker (:class:`WebhookWorker`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from leadscore.infra import redis_store
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.retry import until_done
from leadscore.infra.webhooks.delivery import (
    DeliveryPolicy,
    SendRecord,
    WebhookDeliverer,
    ensure_dead_letter_topic,
)
from leadscore.infra.webhooks.queue import (
    QueueResult,
    SubscriptionCache,
    queue_score_events,
)
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.models.batch.records import InputRecord, dead_letter
from leadscore.settings import Settings

log = logging.getLogger(__name__)


def connect(url: str, *, max_connections: int, retries: int = 5) -> aioredis.Redis:
    """A client for the webhook loops: a bounded pool that waits for a free connection.

    redis-py's default pool raises ``MaxConnectionsError`` past 100 connections; with many
    deliveries in flight it is better that one waits a moment. Errors are retried a bounded
    number of times, as in :func:`leadscore.infra.redis_store.connect`.
    """
    return redis_store.connect(url, retries=retries, max_connections=max_connections, wait_s=30)


class WebhookWorker:
    """What ``leadscore.streams.app`` wires in: queue score events, run the delivery loop.

    Args:
        settings: configuration.
        send: publishes (topic, key, value) and returns once acknowledged.
    """

    def __init__(self, settings: Settings, send: SendRecord) -> None:
        self.settings = settings
        self.send = send
        self.policy = DeliveryPolicy.from_settings(settings)
        self._store: WebhookStore | None = None
        self._ids: LeadIds | None = None
        self._subscriptions: SubscriptionCache | None = None
        self._deliverer: WebhookDeliverer | None = None

    @property
    def store(self) -> WebhookStore:
        """The store, connected on first use (inside the worker's event loop)."""
        if self._store is None:
            # one connection per delivery in flight, plus the queuing agent's
            client = connect(self.settings.redis_url, max_connections=self.policy.concurrency + 4)
            self._store = WebhookStore(
                client, self.settings.redis_prefix, self.settings.webhook_log_ttl_s
            )
            self._subscriptions = SubscriptionCache(self._store)
            s = self.settings
            self._ids = LeadIds(
                client,
                s.redis_prefix,
                plain_topics=s.topic_lead_ids == "plain",
                cache_size=100_000,
                refs=LeadRefs.from_settings(s),
            )
        return self._store

    @property
    def deliverer(self) -> WebhookDeliverer:
        """The delivery loop of this worker."""
        if self._deliverer is None:
            self._deliverer = WebhookDeliverer(
                self.store, self.policy, self.send, refs=LeadRefs.from_settings(self.settings)
            )
        return self._deliverer

    async def queue(self, records: Sequence[InputRecord]) -> QueueResult:
        """Queue a batch; returns once Redis has it (retrying while Redis is down).

        Undecodable records go to the dead-letter topic (``leads.dead-letter.v1``) whole.
        The caller's offsets must be committed only after this returns.
        """
        store = self.store
        subscriptions, ids = self._subscriptions, self._ids
        if subscriptions is None or ids is None:
            raise RuntimeError("the subscription cache is made with the store")
        # An outage: wait it out, never skip the batch.
        result = await until_done(
            lambda: queue_score_events(records, subscriptions, store, ids),
            "queue webhooks in Redis",
            retry_on=(RedisError,),
            log=log,
        )
        for record, reason in result.undecodable:
            letter = dead_letter(record, "undecodable_score_event", reason, datetime.now(UTC))
            await self.send(
                self.settings.dead_letter_topic,
                record.key or b"",
                orjson.dumps(letter.model_dump(mode="json")),
            )
        if result.queued:
            self.deliverer.wake()
        return result

    async def deliver_forever(self) -> None:
        """Create the dead-letter topic if needed, then run the delivery loop until cancelled."""
        await ensure_dead_letter_topic(self.settings)
        await self.deliverer.run()
