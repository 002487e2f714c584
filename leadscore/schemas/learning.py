"""Records of the closed loop: feature samples, labelled examples and drift reports.

- ``leads.features.v1`` (keyed by lead id): :class:`FeatureSample`, the vector a lead
  was scored on and the probability it got, for the drift agent.
- ``leads.training.v1`` (keyed by lead id): :class:`TrainingExample`, the lead's
  vector as it stood just before its first outcome, labelled by that outcome; what
  automatic retraining and ``leadscore train --training-topic`` learn from.
- ``models.drift.v1`` (keyed by model version): :class:`DriftEvent`, one per tested
  window, with the alert level and every per-feature statistic.

Vectors are plain lists in the order of ``feature_names`` of the feature definition
``feature_spec_version`` (``leadscore.models.features.vector``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

LeadId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class FeatureSample(BaseModel):
    """One scored vector (published for every rescored lead, or a sampled share)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: LeadId
    model_version: str = Field(description="the version that scored it (the rules prior: rules-…)")
    feature_spec_version: int
    features: list[float]
    probability: float = Field(ge=0.0, le=1.0)
    event_time: AwareDatetime = Field(description="event time of the event that caused the rescore")
    scored_at: AwareDatetime


class TrainingExample(BaseModel):
    """A lead's feature vector just before its first outcome, with the outcome as label.

    Point in time: ``feature_time`` (the latest activity or profile event in the vector)
    is never after ``outcome_time``; the worker does not emit an example when events
    after the outcome had already reached the lead's state.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(description="deterministic: the same lead and outcome event give the same id")
    lead_id: LeadId
    label: Literal[0, 1] = Field(description="1 = converted, 0 = disqualified")
    outcome: Literal["converted", "disqualified"]
    outcome_event_id: str
    outcome_time: AwareDatetime
    feature_time: AwareDatetime | None = Field(
        description="None when nothing but the outcome is known"
    )
    feature_spec_version: int
    features: list[float]
    model_version: str = Field(description="the champion when the label arrived")
    probability: float = Field(
        ge=0.0, le=1.0, description="what that champion said for this vector"
    )
    produced_at: AwareDatetime


class DriftEvent(BaseModel):
    """A drift window's verdict, published on ``models.drift.v1``.

    ``level`` is the overall alert: the feature/score alert of ``report`` raised by the
    performance alert when labels show the model getting worse.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["drift.window", "drift.baseline"]
    id: str
    model_version: str
    agent: str = Field(description="which drift agent (host:pid) tested the window")
    level: Literal["none", "low", "medium", "high"]
    window_index: int
    n_rows: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    report: dict[str, Any] = Field(default_factory=dict, description="DriftReport.to_dict()")
    performance: dict[str, Any] | None = None
    cpu_ms: float = 0.0
    at: AwareDatetime
