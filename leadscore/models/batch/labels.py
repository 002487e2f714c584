"""Training examples from first outcomes: the lead's vector as it stood when the outcome came.

A lead's first outcome (converted, disqualified) labels the vector the lead had at that
moment, snapshotted before later events of the same batch reach it; the examples go to
``leads.training.v1`` (docs/drift.md), each with the champion's probability.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from leadscore.models.batch.outputs import example_id
from leadscore.models.features.state import LeadState
from leadscore.models.features.vector import FEATURE_SPEC_VERSION, to_vector
from leadscore.models.scoring.scorer import Scorer
from leadscore.schemas.learning import TrainingExample

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Labelled:
    """A first outcome and the lead's vector at that moment (scored later, with the batch)."""

    lead_id: str
    event: Any
    vector: np.ndarray
    feature_time: float | None


def labelled_now(state: LeadState, event: Any) -> Labelled:
    """Snapshot the vector now: later events of the same batch must not reach the example."""
    return Labelled(state.lead_id, event, to_vector(state), state.last_event_t)


def training_examples(
    labelled: list[Labelled], scorer: Scorer, now: datetime
) -> tuple[list[TrainingExample], int]:
    """First outcomes as training examples, with the champion's probability for each.

    Returns:
        The examples, and how many outcomes got none because the lead's state already held
        events after the outcome (in event time): the vector would leak them.
    """
    clean = []
    skipped = 0
    for item in labelled:
        outcome_t = item.event.time.timestamp()
        if item.feature_time is not None and item.feature_time > outcome_t:
            skipped += 1
            log.info(
                "no training example for lead %s: its state already holds events after its "
                "outcome (features at %.0f, outcome at %.0f)", item.lead_id, item.feature_time, outcome_t,
            )  # fmt: skip
            continue
        clean.append(item)
    if not clean:
        return [], skipped
    try:
        probabilities = scorer.probabilities(np.stack([item.vector for item in clean]))
    except Exception:  # the labels must not cost the batch its scores
        log.exception(
            "could not score %d labelled vectors; their examples are not emitted", len(clean)
        )
        return [], skipped
    examples = []
    for item, p in zip(clean, probabilities):
        event = item.event
        outcome = event.type.removeprefix("lead.")
        examples.append(
            TrainingExample(
                id=example_id(item.lead_id, event.id),
                lead_id=item.lead_id,
                label=1 if outcome == "converted" else 0,
                outcome=outcome,
                outcome_event_id=event.id,
                outcome_time=event.time,
                feature_time=(
                    datetime.fromtimestamp(item.feature_time, UTC)
                    if item.feature_time is not None
                    else None
                ),
                feature_spec_version=FEATURE_SPEC_VERSION,
                features=[float(v) for v in item.vector],
                model_version=scorer.version,
                probability=min(1.0, max(0.0, float(p))),
                produced_at=now,
            )
        )
    return examples, skipped
