"""Webhooks: subscriptions, deliveries, the payload envelope, and the bodies of ``/v1/webhooks``.

The payload a receiver gets (docs/webhooks.md) is :class:`WebhookEnvelope`: the score event
of ``leads.scores.v1`` (:class:`~leadscore.schemas.scores.LeadScored`, with the new and the
previous score and grade) wrapped as ``{"type": "lead.score_changed", "timestamp", "data"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from leadscore.schemas.events import Identifier
from leadscore.schemas.privacy import LeadErased
from leadscore.schemas.scores import LeadScored

#: The one event type webhooks carry.
SCORE_CHANGED: Final = "lead.score_changed"

#: A Standard Webhooks secret: ``whsec_`` and the base64 of 24-64 random bytes.
Secret = Annotated[
    str,
    StringConstraints(pattern=r"^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"),
    Field(
        description="the signing secret, 'whsec_' + base64 of 24-64 bytes; leave it out and "
        "one is generated (returned once)",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    ),
]
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, strip_whitespace=True),
    Field(
        description="where to POST events: http(s), no user:password; it must not resolve to a "
        "private, loopback or link-local address (LEADSCORE_WEBHOOK_ALLOW_PRIVATE)",
        examples=["https://crm.example.com/hooks/leadscore"],
    ),
]
Description = Annotated[str, StringConstraints(max_length=500)]
DeliveryStatus = Literal["pending", "delivered", "dead"]


class WebhookEnvelope(BaseModel):
    """What a receiver gets in the body of every webhook request."""

    model_config = ConfigDict(frozen=True)

    type: Literal["lead.score_changed"] = SCORE_CHANGED
    timestamp: AwareDatetime = Field(description="when the score changed (the event's scored_at)")
    data: LeadScored = Field(
        description="the score event as published on leads.scores.v1: score and "
        "previous_score, grade and previous_grade, probability, reasons, ..."
    )


class ErasedEnvelope(BaseModel):
    """The body of the webhook that tells a receiver a lead was erased: erase it too.

    Sent to every enabled subscription, whatever its filters, after any of the lead's score
    webhooks still queued were dropped.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["lead.erased"] = "lead.erased"
    timestamp: AwareDatetime = Field(description="when the lead was erased")
    data: LeadErased


class WebhookFilters(BaseModel):
    """Which score events a subscription gets: an event passes when every given filter passes.

    No filter given: every score change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="only events whose new score is at least this"
    )
    grade_change_only: bool = Field(
        default=False,
        description="only events whose grade differs from the previous grade (a lead's first "
        "score counts as a grade change)",
    )
    lead_ids: Annotated[frozenset[Identifier], Field(min_length=1, max_length=10_000)] | None = (
        Field(default=None, description="only events of these leads (1-10,000 ids)")
    )


class WebhookSubscription(BaseModel):
    """A subscription as stored in Redis (with its secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    description: str | None = None
    filters: WebhookFilters = WebhookFilters()
    enabled: bool = True
    secret: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class DeliveryAttempt(BaseModel):
    """One HTTP request of a delivery and how it ended."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(description="1 for the first attempt; counts on across replays")
    started_at: AwareDatetime
    duration_ms: float
    status_code: int | None = Field(
        default=None, description="the receiver's HTTP status, if it answered"
    )
    error: str | None = Field(
        default=None,
        description="why the attempt failed: a non-2xx status, a timeout, a refused address, ...",
    )


class Delivery(BaseModel):
    """One score event on its way to one subscription: what the delivery log shows."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="delivery id, unique within the subscription")
    subscription_id: str
    webhook_id: str = Field(
        description="the webhook-id header: the score event's id, the same on every attempt and "
        "replay (receivers drop repeats by it)"
    )
    lead_id: str
    status: DeliveryStatus = Field(
        description="pending (queued or retrying), delivered (a 2xx came back) or dead "
        "(every attempt failed; replayable)"
    )
    attempts: list[DeliveryAttempt] = Field(default_factory=list, description="oldest first")
    round_attempts: int = Field(
        0, description="attempts since the delivery was queued or last replayed (the retry budget)"
    )
    next_attempt_at: AwareDatetime | None = Field(
        default=None, description="when the next retry is due"
    )
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None = None
    dead_lettered_at: AwareDatetime | None = None
    replays: int = Field(default=0, description="how many times it was replayed")


class DeliveryRecord(Delivery):
    """A delivery as stored in Redis: with the exact body sent on every attempt."""

    body: str = Field(description="the JSON payload (a WebhookEnvelope), byte for byte as signed")


class WebhookDeadLettered(BaseModel):
    """A delivery that used up its attempts: published on ``webhooks.dead-letter.v1``.

    Keyed by lead id. The delivery also stays in Redis, replayable through
    ``POST /v1/webhooks/{id}/deliveries/{delivery_id}/replay``.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["webhook.dead_lettered"] = "webhook.dead_lettered"
    subscription_id: str
    url: str
    delivery_id: str
    webhook_id: str
    lead_id: str
    attempts: list[DeliveryAttempt]
    last_error: str | None
    payload: dict[str, Any] = Field(description="the envelope that could not be delivered")
    dead_lettered_at: AwareDatetime


# --- API bodies ----------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    """A new subscription."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/leadscore",
                    "description": "hot leads to the CRM",
                    "filters": {"min_score": 80, "grade_change_only": True},
                }
            ]
        },
    )

    url: WebhookUrl
    description: Description | None = None
    filters: WebhookFilters = WebhookFilters()
    enabled: bool = True
    secret: Secret | None = None


class WebhookUpdate(BaseModel):
    """Changes to a subscription: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    description: Description | None = None
    filters: WebhookFilters | None = Field(
        default=None, description="replaces the filters as a whole"
    )
    enabled: bool | None = Field(
        default=None,
        description="false pauses deliveries (new events are not queued; queued ones wait)",
    )
    secret: Secret | None = None
    rotate_secret: bool = Field(default=False, description="generate a new secret (returned once)")


class Webhook(BaseModel):
    """A subscription as the API shows it (never with its secret)."""

    id: str
    url: str
    description: str | None
    filters: WebhookFilters
    enabled: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime


class WebhookWithSecret(Webhook):
    """A subscription with its secret: answered once, when the secret is set."""

    secret: str = Field(description="verify signatures with it; it is not shown again")


class WebhookUpdated(Webhook):
    """A changed subscription; ``secret`` is there only when the secret changed."""

    secret: str | None = Field(
        default=None, description="the new secret, when it changed; not shown again"
    )


class WebhookList(BaseModel):
    """Every subscription, oldest first."""

    webhooks: list[Webhook]


class DeliveryList(BaseModel):
    """A page of the delivery log, newest first."""

    deliveries: list[Delivery]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page (none: this was the last)"
    )


class ReplayResult(BaseModel):
    """Deliveries put back in their queues."""

    replayed: list[str] = Field(description="ids of the deliveries queued again")


class WebhookTestResult(BaseModel):
    """The outcome of one signed test request (not queued, not retried, not logged)."""

    webhook_id: str = Field(description="the webhook-id header sent (starts with 'test_')")
    delivered: bool = Field(description="the receiver answered 2xx")
    status_code: int | None
    error: str | None
    duration_ms: float
    payload: dict[str, Any] = Field(description="the body that was sent")
