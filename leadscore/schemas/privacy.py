"""Erasure: the request the worker acts on, the event that tells downstream, the receipt.

None of them holds personal data except :class:`LeadErased` as webhooks and the WebSocket
feed deliver it (the receiver must learn which lead to erase); on ``leads.scores.v1`` it
carries the lead as written there (its pseudonym, unless the deployment writes plain ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def is_erased_event(event: Mapping[str, Any]) -> bool:
    """Whether a decoded record of the scores topic is a ``lead.erased`` event (not a score)."""
    return event.get("type") == "lead.erased"


class ErasureRequested(BaseModel):
    """One lead to erase: a record of the erasures topic, keyed by the lead's pseudonym and
    written to the partition the lead's events are on, so the worker that holds the lead reads it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["lead.erasure_requested"] = "lead.erasure_requested"
    erasure_id: str
    pseudonym: str
    requested_at: AwareDatetime = Field(
        description="events of the lead up to this time are never applied again (a replay "
        "of old input cannot bring the lead back); later ones start a new lead"
    )


class LeadErased(BaseModel):
    """A lead was erased: published on ``leads.scores.v1``, to webhook receivers and to the
    WebSocket feed, so that downstream systems erase it too."""

    model_config = ConfigDict(frozen=True)

    type: Literal["lead.erased"] = "lead.erased"
    id: str = Field(description="unique per (erasure, lead): receivers drop repeats by it")
    lead_id: str
    erasure_id: str
    erased_at: AwareDatetime


ErasureStatus = Literal["pending", "done", "failed"]


class ErasureReceipt(BaseModel):
    """What an erasure did: who asked, when, why, what was removed. No lead ids in it."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: ErasureStatus
    requested_at: AwareDatetime
    requested_by: str = Field(description="the API key id, or 'cli' / 'retention'")
    reason: str | None = None
    leads: int = Field(description="leads in the request")
    erased: int = Field(0, description="leads the worker has erased so far")
    notified: int = Field(0, description="of those, whose lead.erased was queued for webhooks")
    removed: dict[str, int] = Field(
        default_factory=dict, description="what was removed, by kind (Redis keys, deliveries)"
    )
    completed_at: AwareDatetime | None = None
    detail: str | None = None
