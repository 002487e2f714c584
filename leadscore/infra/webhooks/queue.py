"""Webhooks, queueing: match each batch of score events to subscriptions, queue them in Redis.

The agent side of the webhooks (loop 1 of :mod:`leadscore.infra.webhooks.worker`): it never
waits on a receiver, and returns once Redis holds the batch's deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from leadscore.infra.privacy.lead_ids import LeadIds, decode_score
from leadscore.infra.webhooks.forget import forget_leads
from leadscore.infra.webhooks.messages import delivery_id, envelope_body, erased_body, passes
from leadscore.infra.webhooks.store import QueuedDelivery, WebhookStore
from leadscore.models.batch.records import InputRecord
from leadscore.schemas.privacy import LeadErased, is_erased_event
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
        out.append(_queued(sub.id, event.id, event.lead_id, body, now))
    return out


def _queued(
    subscription_id: str, event_id: str, lead_id: str, body: str, now: datetime
) -> QueuedDelivery:
    """A new delivery of one event (its id, lead and signed body) to one subscription."""
    record = DeliveryRecord(
        id=delivery_id(subscription_id, event_id),
        subscription_id=subscription_id,
        webhook_id=event_id,
        lead_id=lead_id,
        status="pending",
        created_at=now,
        body=body,
        round_attempts=0,
        next_attempt_at=None,
        replays=0,
    )
    return QueuedDelivery(subscription_id, lead_id, record)


async def queue_score_events(
    records: Sequence[InputRecord],
    subscriptions: SubscriptionCache,
    store: WebhookStore,
    ids: LeadIds,
) -> QueueResult:
    """Queue a batch of score events for every subscription they pass, in one round trip.

    Within a (subscription, lead) the queue order is the order of ``records`` (one lead's
    events share a partition, and a batch keeps each partition's order). The lead of each
    event is turned back from its pseudonym (``ids``); an event whose lead was erased
    since is dropped. A ``lead.erased`` event drops the lead's queued deliveries, is
    queued for every enabled subscription, and then lets the erasure finish (its
    pseudonym's entry in ``P ids`` goes).
    """
    subs = await subscriptions.active()
    result = QueueResult(queued=0, matched=0, undecodable=[])
    decoded: list[dict[str, Any] | None] = []
    for record in records:
        event = decode_score(record.value)
        if event is None and record.value is not None:
            result.undecodable.append((record, "not a score event (a JSON object with lead_id)"))
        decoded.append(event)
    now = datetime.now(UTC)
    events = await ids.resolve_events(decoded)
    # Where each erased lead's lead.erased is in the batch: its score events before that are
    # not queued (and those queued by earlier batches are dropped first, below).
    erased_at = {
        event["lead_id"]: i
        for i, event in enumerate(events)
        if event is not None and is_erased_event(event)
    }
    items: list[QueuedDelivery] = []
    finished: list[tuple[str, str]] = []
    for i, (record, event) in enumerate(zip(records, events, strict=True)):
        if event is None:
            continue
        if is_erased_event(event):
            try:
                erased = LeadErased.model_validate(event)
            except ValidationError as exc:
                result.undecodable.append(
                    (record, f"not a lead.erased event: {exc.errors()[0]['msg']}")
                )
                continue
            items.extend(erased_deliveries(erased, subs, now))
            finished.append(((record.key or b"").decode(errors="replace"), erased.erasure_id))
            continue
        if not subs or erased_at.get(event["lead_id"], -1) > i:
            continue
        try:
            scored = LeadScored.model_validate(event)
        except ValidationError as exc:
            result.undecodable.append((record, f"not a LeadScored event: {exc.errors()[0]['msg']}"))
            continue
        items.extend(deliveries_for(scored, subs, now))
    if erased_at:
        await forget_leads(store, list(erased_at))
    result.matched = len(items)
    result.queued = await store.enqueue(items)
    await ids.finish_many([(ids.table_ref(p), erasure_id) for p, erasure_id in finished])
    return result


def erased_deliveries(
    event: LeadErased, subscriptions: Sequence[WebhookSubscription], now: datetime
) -> list[QueuedDelivery]:
    """A ``lead.erased`` delivery for every subscription (filters do not apply: any of them
    may have received the lead's scores)."""
    body = erased_body(event).decode()
    return [_queued(sub.id, event.id, event.lead_id, body, now) for sub in subscriptions]
