"""Which score events a subscription gets, and the message sent for each: its id and body.

Also the invented event a test-fire sends.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import orjson

from leadscore.schemas.privacy import LeadErased
from leadscore.schemas.scores import LeadScored, Reason
from leadscore.schemas.webhooks import ErasedEnvelope, WebhookEnvelope, WebhookFilters


def passes(filters: WebhookFilters, event: LeadScored) -> bool:
    """Whether ``event`` passes every filter that is set.

    Examples:
        >>> from datetime import UTC
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> event = LeadScored(id="sc_1", lead_id="lead-1", score=85, probability=0.85, grade="A",
        ...     previous_score=70, previous_grade="B", model_version="m1", base_score=30.0,
        ...     reasons=[], cause_event_id="e1", event_time=t, scored_at=t)
        >>> passes(WebhookFilters(min_score=80, grade_change_only=True), event)
        True
        >>> passes(WebhookFilters(min_score=90), event), passes(WebhookFilters(lead_ids={"x"}), event)
        (False, False)
    """
    if filters.min_score is not None and event.score < filters.min_score:
        return False
    if filters.grade_change_only and event.grade == event.previous_grade:
        return False
    if filters.lead_ids is not None and event.lead_id not in filters.lead_ids:
        return False
    return True


def envelope_body(event: LeadScored) -> bytes:
    """The JSON body of a score event's webhook: ``{"type", "timestamp", "data"}``.

    Encoded once per delivery and sent byte for byte on every attempt (the signature
    covers these exact bytes).
    """
    envelope = WebhookEnvelope(timestamp=event.scored_at, data=event)
    return orjson.dumps(envelope.model_dump(mode="json"))


def erased_body(event: LeadErased) -> bytes:
    """The JSON body of a ``lead.erased`` webhook: ``{"type", "timestamp", "data"}``."""
    envelope = ErasedEnvelope(timestamp=event.erased_at, data=event)
    return orjson.dumps(envelope.model_dump(mode="json"))


def delivery_id(subscription_id: str, event_id: str) -> str:
    """The id of the delivery of one event to one subscription: deterministic, so a score
    event read twice from Kafka (at-least-once) is queued once.

    Examples:
        >>> delivery_id("wh_1", "sc_1") == delivery_id("wh_1", "sc_1") != delivery_id("wh_2", "sc_1")
        True
    """
    digest = hashlib.blake2b(f"{subscription_id}\x00{event_id}".encode(), digest_size=12)
    return "dlv_" + digest.hexdigest()


def sample_event(event_id: str, now: datetime) -> LeadScored:
    """The score event a test-fire sends: an invented lead moving from 74 (B) to 82 (A)."""
    return LeadScored(
        id=event_id,
        lead_id="sample-lead",
        score=82,
        probability=0.82,
        grade="A",
        previous_score=74,
        previous_grade="B",
        model_version="sample",
        base_score=31.0,
        reasons=[
            Reason(feature="demo_requests", label="1 demo request", value=1.0, contribution=24.5),
            Reason(
                feature="pricing_views", label="3 pricing page views", value=3.0, contribution=11.2
            ),
        ],
        cause_event_id="sample-event",
        event_time=now,
        scored_at=now,
    )
