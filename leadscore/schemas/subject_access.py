"""A subject-access export: everything leadscore holds about one lead, as one JSON document.

Made by :func:`leadscore.infra.privacy.export.export_lead` for ``GET /v1/leads/{id}/export``
and ``leadscore export``. Score events, the state, activity entries and deliveries are given
as leadscore stores them (their schemas are in docs/events.md and docs/webhooks.md), so the
document shows the data itself, not a summary of it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Names this document's layout; a change that drops or renames a field gets a new one.
EXPORT_FORMAT: Final = "leadscore.subject-access.v1"


class Elsewhere(BaseModel):
    """A place outside this document where leadscore may hold data about the lead."""

    model_config = ConfigDict(frozen=True)

    place: str = Field(description="the topic, table or artifact")
    holds: str = Field(description="what it may hold about the lead")
    named_by: str = Field(description="how it names the lead: its pseudonym, its id, or not at all")
    see: str = Field(description="where the documentation says more")


class WebhookDeliveries(BaseModel):
    """The lead's webhook deliveries, by status, each with its payload and its recipient."""

    model_config = ConfigDict(frozen=True)

    pending: list[dict[str, Any]] = Field(description="queued or retrying, oldest first")
    delivered: list[dict[str, Any]] = Field(description="in the delivery log, oldest first")
    dead: list[dict[str, Any]] = Field(description="every attempt failed; kept until replayed")
    subscriptions: int = Field(description="subscriptions looked at")
    dead_scanned: int = Field(description="dead deliveries read to find the lead's old ones")
    complete: bool = Field(
        description="false: a subscription had more dead deliveries than were read, and older "
        "dead deliveries of the lead may be missing here"
    )
    note: str


class Retention(BaseModel):
    """What governs how long the data is kept."""

    model_config = ConfigDict(frozen=True)

    last_event_at: AwareDatetime | None = Field(
        description="the lead's last event time, as the retention index holds it"
    )
    forgotten_after: AwareDatetime | None = Field(
        description="when the lead is erased for inactivity unless it has new events "
        "(LEADSCORE_LEAD_RETENTION_DAYS; null: kept until erased)"
    )
    dead_letter_key_expires_at: AwareDatetime | None = Field(
        description="the lead's refused input records (the dead-letter topic) can be opened "
        "until then; null: there is no key, none can be opened"
    )
    erasure_in_progress: str | None = Field(
        default=None, description="the id of an erasure of the lead still on its way"
    )


class SubjectAccessExport(BaseModel):
    """Everything leadscore holds about one lead (``GET /v1/leads/{id}/export``)."""

    model_config = ConfigDict(frozen=True)

    format: Literal["leadscore.subject-access.v1"] = EXPORT_FORMAT
    lead_id: str
    generated_at: AwareDatetime
    leadscore_version: str
    elsewhere: list[Elsewhere] = Field(
        description="where else leadscore may hold data about the lead (not read for this "
        "document: that would mean reading whole topics)"
    )
    pseudonym: str = Field(description="'p_' + 40 hex characters")
    pseudonym_means: str = Field(description="what the pseudonym is and where it is used")
    pseudonym_on_topics: bool = Field(
        description="leadscore's topics name the lead by its pseudonym (else by its id: "
        "LEADSCORE_TOPIC_LEAD_IDS=plain)"
    )
    pseudonym_linked: bool = Field(
        description="Redis maps the pseudonym back to the lead id: records on the topics can "
        "be tied to the lead"
    )
    latest_score: dict[str, Any] | None = Field(description="the latest published score event")
    leaderboard_points: float | None = Field(
        description="the lead's value on the leaderboard, which ranks it (probability x 100)"
    )
    score_history: list[dict[str, Any]] = Field(
        description="published score events, newest first (LEADSCORE_HISTORY_LENGTH kept)"
    )
    state: dict[str, Any] | None = Field(
        description="the lead's feature state as the worker last stored it in Redis"
    )
    state_note: str
    activity: list[dict[str, Any]] = Field(
        description="applied input events, newest first (LEADSCORE_ACTIVITY_LENGTH kept)"
    )
    webhook_deliveries: WebhookDeliveries
    retention: Retention
