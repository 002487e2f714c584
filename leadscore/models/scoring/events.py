"""Score events and score responses, built by one function from a model's explanation.

The worker publishes :class:`~leadscore.schemas.scores.LeadScored` events; ``POST
/v1/score`` answers :class:`~leadscore.schemas.api.ScoreResponse` s. Both carry the same
explained score (:func:`explained_score`), so a lead reads the same whichever way it is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from hashlib import blake2b
from typing import Any

import numpy as np

from leadscore.models.scoring.scorer import Explanation, Scorer, to_score
from leadscore.schemas.api import ScoreResponse
from leadscore.schemas.scores import LeadScored

__all__ = ["explained_score", "lead_scored", "score_event_id", "score_response"]


def explained_score(
    scorer: Scorer,
    explanation: Explanation,
    row: np.ndarray,
    probability: float,
    last_points: Mapping[str, float] | None,
) -> dict[str, Any]:
    """The fields every score carries: score, grade, model, base, reasons, changes, components.

    Args:
        scorer: the model and policy that scored the row.
        explanation: the row's explanation from ``scorer.explain``.
        row: the feature vector (for the words of the changes).
        probability: the row's probability.
        last_points: the points of the lead's last published score (``None``: no changes).
    """
    policy = scorer.policy
    score = to_score(float(probability))
    return {
        "score": score,
        "probability": round(float(probability), 6),
        "grade": policy.grade(score),
        "model_version": scorer.version,
        "base_score": explanation.base_score,
        "reasons": explanation.reasons,
        "changes": explanation.changes_since(
            last_points, lambda name: scorer.word(name, row), policy.top_changes
        ),
        "components": explanation.components,
    }


def lead_scored(
    fields: Mapping[str, Any],
    *,
    lead_id: str,
    row: np.ndarray,
    previous_score: int | None,
    previous_grade: str | None,
    cause_event_id: str,
    cause_event_type: str | None,
    event_time: datetime,
    scored_at: datetime,
    previous_id: str | None,
) -> LeadScored:
    """The score event for ``leads.scores.v1`` (its id: :func:`score_event_id`).

    ``previous_id`` is the id of the lead's last published score event, ``None`` for its first.
    """
    return LeadScored(
        id=score_event_id(lead_id, cause_event_id, fields["model_version"], row, previous_id),
        lead_id=lead_id,
        previous_score=previous_score,
        previous_grade=previous_grade,
        cause_event_id=cause_event_id,
        cause_event_type=cause_event_type,
        event_time=event_time,
        scored_at=scored_at,
        **fields,
    )


def score_response(
    fields: Mapping[str, Any],
    *,
    lead_id: str,
    previous_score: int | None,
    scored_from: str,
    scored_at: datetime,
) -> ScoreResponse:
    """The answer of ``POST /v1/score`` for one lead."""
    return ScoreResponse(
        lead_id=lead_id,
        previous_score=previous_score,
        scored_from=scored_from,
        scored_at=scored_at,
        **fields,
    )


def score_event_id(
    lead_id: str,
    cause_event_id: str,
    model_version: str,
    features: np.ndarray,
    previous_id: str | None,
) -> str:
    """A deterministic id: the same id always means the same score event, byte for byte.

    It hashes everything the content follows from: the lead, the causing event, the
    model, the feature vector it scored and the id of the lead's previous score event
    (which fixes the previous score, grade and the points the changes are measured
    from; the record timestamp of the cause fixes ``scored_at``). Ids chain: a replay
    after a crash that publishes a score the lead never had before (its batches fell
    differently) gives every later score of the lead a new id too, so a consumer that
    drops repeated ids never drops the lead's newest score in favour of an older one.
    """
    digest = blake2b(digest_size=12)
    digest.update(f"{lead_id}\x00{cause_event_id}\x00{model_version}\x00".encode())
    digest.update(np.ascontiguousarray(features, dtype=np.float64).tobytes())
    digest.update(f"\x00{previous_id}".encode())
    return "sc_" + digest.hexdigest()
