"""Model events on ``models.events.v1``: a champion was promoted or rolled back.

One JSON object per event, keyed by the segment (``"default"`` for the default
segment)::

    {"type": "model.promoted", "id": "me_5f0c...", "version": "20261127T031530Z-3a9974",
     "previous": "20261127T030939Z-0fdf18", "segment": null, "reason": "better AUC",
     "at": "2026-11-27T03:20:00Z"}

The registry's champion pointer is the source of truth; an event only says "look
now". Readers must ignore types they do not know: ``model.trained`` and
``model.rejected`` will share the envelope (:class:`ModelEvent`) later.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: The Kafka key of events about the default segment.
DEFAULT_SEGMENT_KEY = "default"

Version = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Same rule as the registry's segment names (leadscore.models.registry.champion._SEGMENT_RE).
Segment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ChampionChangeType = Literal["model.promoted", "model.rolled_back"]


class ModelEvent(BaseModel):
    """What every model event carries; read this first, then dispatch on ``type``.

    Unknown fields are ignored, so later versions may add some.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Annotated[str, StringConstraints(pattern=r"^model\.[a-z_]+$")]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    version: Version = Field(description="the model version the event is about")
    segment: Segment | None = Field(None, description="the registry segment; null = default")
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    at: AwareDatetime = Field(description="when it happened (UTC)")

    @field_validator("at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def key(self) -> str:
        """The Kafka key: the segment, or ``"default"``."""
        return self.segment or DEFAULT_SEGMENT_KEY


class ChampionChanged(ModelEvent):
    """A segment's champion changed: ``version`` is the new champion, ``previous`` the old."""

    type: ChampionChangeType
    previous: Version | None = Field(description="the champion before; null if there was none")


#: Event types after which a worker re-reads the champion pointer.
CHAMPION_CHANGE_TYPES: frozenset[str] = frozenset({"model.promoted", "model.rolled_back"})


def champion_changed(
    type: ChampionChangeType,
    *,
    version: str,
    previous: str | None,
    segment: str | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> ChampionChanged:
    """A new :class:`ChampionChanged` event with a fresh unique id.

    Examples:
        >>> event = champion_changed("model.promoted", version="v2", previous="v1")
        >>> event.key, event.id.startswith("me_"), event.at.tzinfo is UTC
        ('default', True, True)
    """
    return ChampionChanged(
        type=type,
        id=f"me_{uuid.uuid4().hex}",
        version=version,
        previous=previous,
        segment=segment,
        reason=reason,
        at=at or datetime.now(UTC),
    )


def decode_model_event(raw: bytes) -> ModelEvent:
    """Validate one record value: a :class:`ChampionChanged` for its types, else the envelope.

    Raises:
        pydantic.ValidationError: not JSON, or not a model event.
    """
    envelope = ModelEvent.model_validate_json(raw)
    if envelope.type in CHAMPION_CHANGE_TYPES:
        return ChampionChanged.model_validate_json(raw)
    return envelope


class RetrainDecided(ModelEvent):
    """An automatic or manual retrain ended: the candidate was promoted, rejected, or none was trained.

    ``version`` is the candidate (the champion when no candidate was trained);
    ``decision`` is the full record (trigger, holdout, both models' metrics, margin, reason),
    the same as ``GET /v1/models/retraining`` lists.
    """

    type: Literal["model.retrain_decided"] = "model.retrain_decided"
    outcome: Literal["promoted", "rejected", "skipped", "failed"]
    decision: dict[str, Any]
