"""Bodies of the REST API: what callers send and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from leadscore.schemas.events import Identifier, ProfileData
from leadscore.schemas.scores import Grade, Reason, ReasonChange, ScoreComponents

ActivityType = Literal[
    "lead.page_viewed",
    "lead.email_opened",
    "lead.email_clicked",
    "lead.form_submitted",
    "lead.content_downloaded",
    "lead.demo_requested",
    "lead.call_logged",
    "lead.meeting_held",
    "lead.social_engaged",
    "lead.referral_made",
]


class ActivityIn(BaseModel):
    """One thing the lead did: the ``type``, ``time`` and ``data`` of an activity event."""

    model_config = ConfigDict(extra="forbid")

    type: ActivityType
    time: AwareDatetime = Field(
        description="when it happened (timezone-aware, e.g. 2026-11-26T10:00:00Z)"
    )
    id: Identifier | None = Field(None, description="event id; repeats of an id count once")
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="as in the event of that type (docs/events.md), e.g. {'url': '/pricing'} "
        "for lead.page_viewed",
    )


class ProfileIn(ProfileData):
    """The lead's profile; unlike in events, an unknown field is an error (likely a typo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreRequest(BaseModel):
    """A lead to score: its profile and activity, or only its id (its state as the worker keeps it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "lead_id": "lead-42",
                    "profile": {
                        "company_size": 250,
                        "industry": "software",
                        "job_title": "VP Sales",
                        "lead_source": "webinar",
                    },
                    "activities": [
                        {
                            "type": "lead.page_viewed",
                            "time": "2026-11-20T10:00:00Z",
                            "data": {"url": "/pricing", "duration_s": 90},
                        },
                        {"type": "lead.demo_requested", "time": "2026-11-21T09:30:00Z"},
                    ],
                },
                {"lead_id": "lead-42"},
            ]
        },
    )

    lead_id: Identifier
    profile: ProfileIn | None = Field(None, description="who the lead is (all fields optional)")
    profile_time: AwareDatetime | None = Field(
        None, description="when the profile was last updated (default: the latest activity, or now)"
    )
    activities: Annotated[list[ActivityIn], Field(max_length=10_000)] = Field(
        default_factory=list, description="what the lead did, in any order"
    )


class ScoreResponse(BaseModel):
    """A lead's score with its explanation, computed now (nothing is published or stored)."""

    lead_id: str
    score: Annotated[int, Field(ge=0, le=100)]
    probability: float
    grade: Grade
    model_version: str
    base_score: float = Field(description="the model's average score, before any reason")
    reasons: list[Reason]
    changes: list[ReasonChange] = Field(
        default_factory=list,
        description="scored from the stored state: what moved since the lead's last published score",
    )
    components: ScoreComponents | None = None
    previous_score: int | None = Field(None, description="the lead's last published score, if any")
    scored_from: Literal["request", "stored_state"]
    scored_at: datetime


class BatchScoreRequest(BaseModel):
    """Up to ``LEADSCORE_API_MAX_BATCH`` leads, scored with one model call."""

    model_config = ConfigDict(extra="forbid")

    leads: Annotated[list[ScoreRequest], Field(min_length=1)]


class BatchScoreError(BaseModel):
    index: int
    lead_id: str
    code: str
    message: str


class BatchScoreResponse(BaseModel):
    model_version: str
    results: list[ScoreResponse] = Field(description="in request order, without the failed leads")
    errors: list[BatchScoreError] = Field(
        default_factory=list, description="leads that could not be scored (e.g. unknown lead id)"
    )


class LeaderboardEntry(BaseModel):
    rank: int
    lead_id: str
    score: int
    probability: float
    grade: Grade | None = None
    model_version: str | None = None
    scored_at: datetime | None = None


class Leaderboard(BaseModel):
    total: int = Field(description="leads on the leaderboard")
    offset: int
    limit: int
    leads: list[LeaderboardEntry]


class ScoreHistory(BaseModel):
    lead_id: str
    scores: list[dict[str, Any]] = Field(description="published score events, newest first")


class ExperimentRequest(BaseModel):
    """An A/B test of a challenger against the champion."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    challenger: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="model version to test"
    )
    champion: str | None = Field(None, description="default: the current champion")
    traffic: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="share of leads on the challenger"
    )
    description: Annotated[str, Field(max_length=2000)] = ""


class Experiment(BaseModel):
    id: str
    name: str
    champion: str | None
    challenger: str
    traffic: float
    description: str
    status: Literal["draft", "running", "stopped"]
    created_at: datetime
    created_by: str


class TrainRequest(BaseModel):
    """A training job (runs in its own process; poll ``GET /v1/jobs/{id}``)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["simulated", "events_file"] = Field(
        "simulated",
        description="simulated: synthetic leads (demo); events_file: a JSON-lines file of lead "
        "CloudEvents on the API host, in LEADSCORE_API_DATA_DIR",
    )
    events_path: str | None = Field(
        None,
        max_length=1000,
        description="the file's path relative to LEADSCORE_API_DATA_DIR (nothing outside it is read)",
    )
    leads: Annotated[int, Field(ge=100, le=1_000_000)] = 4000
    folds: Annotated[int, Field(ge=2, le=10)] = 5
    search: Literal["quick", "none"] = "quick"
    variant: str | None = Field(None, description="default: LEADSCORE_MODEL_VARIANT")
    seed: int = 0
    promote: bool = Field(False, description="make the new model the champion when done")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=500)] | None = None
    segment: Annotated[str, Field(max_length=100)] | None = None


class RollbackRequest(PromoteRequest):
    pass


class Job(BaseModel):
    id: str
    kind: Literal["train", "score_file", "retrain"]
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(description="0 to 1")
    stage: str = ""
    message: str = ""
    created_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    created_by: str | None = None


class KeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    revoked_at: str | None = None


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    at: str
    key_id: str | None
    key_name: str | None
    method: str
    path: str
    status: int
    outcome: str
