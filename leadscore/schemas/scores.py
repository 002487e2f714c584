"""Output records: score-change events on ``leads.scores.v1`` and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Grade = Literal["A", "B", "C", "D"]


class Reason(BaseModel):
    """One feature's contribution to a score, in score points (0–100 scale)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    label: str = Field(description="the reason in words, e.g. '3 demo requests'")
    value: float = Field(description="the feature's value for this lead")
    contribution: float = Field(
        description="points this feature adds to (or takes from) the score; "
        "base score + all contributions = 100 x probability (the score is that, rounded)"
    )


class ReasonChange(BaseModel):
    """How one feature's contribution moved since the lead's previous published score."""

    model_config = ConfigDict(frozen=True)

    feature: str
    label: str = Field(description="the feature now, in words")
    contribution: float = Field(description="points now")
    previous_contribution: float = Field(description="points in the previous published score")
    delta: float = Field(description="contribution - previous_contribution")


class ScoreComponents(BaseModel):
    """The score's points split by factor family; ``fit`` and ``engagement`` sum them.

    ``fit`` is who the lead is (demographic and data-quality families); ``engagement``
    is what the lead did (behavioral, engagement, content, temporal, interaction).
    ``base score + fit + engagement = 100 x probability``.
    """

    model_config = ConfigDict(frozen=True)

    fit: float
    engagement: float
    families: dict[str, float] = Field(description="points per factor family")


class LeadScored(BaseModel):
    """A lead's score moved (or its grade changed): published on ``leads.scores.v1``.

    ``id`` is deterministic (lead, causing event, model version), so a replay after
    a crash republishes the same id and consumers can drop repeats.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["lead.scored"] = "lead.scored"
    id: str
    lead_id: str
    score: Annotated[int, Field(ge=0, le=100)]
    probability: Annotated[float, Field(ge=0.0, le=1.0)]
    grade: Grade
    previous_score: Annotated[int, Field(ge=0, le=100)] | None = None
    previous_grade: Grade | None = None
    model_version: str
    base_score: float = Field(description="the model's average score, before any reason")
    reasons: list[Reason] = Field(description="top reasons, largest |contribution| first")
    changes: list[ReasonChange] = Field(
        default_factory=list,
        description="the contributions that moved most since the previous published score, "
        "largest |delta| first (empty for a lead's first score)",
    )
    components: ScoreComponents | None = Field(
        default=None, description="points per factor family, and fit vs engagement"
    )
    cause_event_id: str = Field(description="id of the input event that triggered this score")
    cause_event_type: str | None = Field(
        default=None,
        description="type of that input event, e.g. 'lead.page_viewed' (None in events "
        "published before the field existed)",
    )
    event_time: AwareDatetime = Field(description="event time of the causing event")
    scored_at: AwareDatetime = Field(description="wall-clock time the score was computed")
    experiment: str | None = None
    arm: str | None = None


class DeadLetter(BaseModel):
    """An input record that could not be used, kept whole with the reason.

    Published on ``leads.dead-letter.v1`` with the original key.
    """

    model_config = ConfigDict(frozen=True)

    reason_code: str
    reason: str
    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str | None = Field(description="the raw record value, base64")
    received_at: datetime
    sealed: str | None = Field(
        default=None,
        description="the Redis key (under the prefix) of the key the raw key and value are "
        "sealed with (AES-256-GCM: base64 of nonce + ciphertext); read them with "
        "`leadscore dead-letters` while it exists",
    )
