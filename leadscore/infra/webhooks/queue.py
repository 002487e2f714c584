"""Webhooks, queueing: match each batch of score events to subscriptions, queue them in Redis.

The agent side of the webhooks (loop 1 of :mod:`leadscore.infra.webhooks.worker`): it never
waits on a receiver, and returns once Redis holds the batch's deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from leadscore.infra.webhooks.messages import delivery_id, envelope_body, passes
from leadscore.infra.webhooks.store import QueuedDelivery, WebhookStore
from leadscore.models.batch.records import InputRecord
from leadscore.schemas.scores import LeadScored
from leadscore.schemas.webhooks import DeliveryRecord, WebhookSubscription


@dataclass(slots=True)
class QueueResult:
    """What queuing one batch did."""

    queued: int
    matched: int
    undecodable: list[tuple[InputRecord, str]]


class SubscriptionCache:
    """The subscriptions, read once per batch (one HGETALL) and parsed only when they change."""

    def __init__(self, store: WebhookStore) -> None:
        self.store = store
        self._parsed: dict[bytes, WebhookSubscription] = {}

    async def active(self) -> list[WebhookSubscription]:
        """The enabled subscriptions, as Redis has them now."""
        raw = await self.store.raw_subscriptions()
        parsed: dict[bytes, WebhookSubscription] = {}
        for value in raw.values():
            cached = self._parsed.get(value)
            parsed[value] = (
                cached if cached is not None else WebhookSubscription.model_validate_json(value)
            )
        self._parsed = parsed
        return [sub for sub in parsed.values() if sub.enabled]


def deliveries_for(
    event: LeadScored, subscriptions: Sequence[WebhookSubscription], now: datetime
) -> list[QueuedDelivery]:
    """The deliveries one score event makes: one per subscription it passes.

    A subscription gets the events scored after it was made, never older history (a new
    worker group reads the scores topic from its beginning).
    """
    out: list[QueuedDelivery] = []
    body: str | None = None
    for sub in subscriptions:
        if event.scored_at < sub.created_at or not passes(sub.filters, event):
            continue
        if body is None:
            body = envelope_body(event).decode()
        record = DeliveryRecord(
            id=delivery_id(sub.id, event.id),
            subscription_id=sub.id,
            webhook_id=event.id,
            lead_id=event.lead_id,
            status="pending",
            created_at=now,
            body=body,
            round_attempts=0,
            next_attempt_at=None,
            replays=0,
        )
        out.append(QueuedDelivery(sub.id, event.lead_id, record))
    return out


async def queue_score_events(
    records: Sequence[InputRecord], subscriptions: SubscriptionCache, store: WebhookStore
) -> QueueResult:
    """Queue a batch of score events for every subscription they pass, in one round trip.

    Within a (subscription, lead) the queue order is the order of ``records`` (one lead's
    events share a partition, and a batch keeps each partition's order).
    """
    subs = await subscriptions.active()
    result = QueueResult(queued=0, matched=0, undecodable=[])
    if not subs:
        return result
    now = datetime.now(UTC)
    items: list[QueuedDelivery] = []
    for record in records:
        try:
            event = LeadScored.model_validate_json(record.value or b"")
        except ValidationError as exc:
            result.undecodable.append((record, f"not a LeadScored event: {exc.errors()[0]['msg']}"))
            continue
        items.extend(deliveries_for(event, subs, now))
    result.matched = len(items)
    result.queued = await store.enqueue(items)
    return result
