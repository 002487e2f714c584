"""The closed loop's inputs from process_batch: point-in-time training examples and feature samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from leadscore.infra.scorer import load_scorer
from leadscore.models.batch.outputs import example_id, sampled
from leadscore.models.batch.processing import BatchResult, process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, to_vector
from leadscore.models.scoring.scorer import Scorer
from leadscore.schemas.decode import EventKind
from leadscore.schemas.events import lead_event_adapter
from leadscore.settings import Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACTIVITY, PROFILE, OUTCOME = "leads.activity.v1", "leads.profile.v1", "leads.outcome.v1"
KINDS = {ACTIVITY: EventKind.ACTIVITY, PROFILE: EventKind.PROFILE, OUTCOME: EventKind.OUTCOME}
TOPIC_OF = {
    "lead.profile_updated": PROFILE,
    "lead.converted": OUTCOME,
    "lead.disqualified": OUTCOME,
}


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    """The rules prior (an empty registry is a cold start)."""
    return load_scorer(Settings(model_dir=tmp_path_factory.mktemp("empty-registry")))


class Worker:
    """process_batch with the table in a dict, as the worker keeps it."""

    def __init__(self, scorer: Scorer, sample_rate: float = 1.0) -> None:
        self.scorer = scorer
        self.sample_rate = sample_rate
        self.states: dict[str, dict[str, Any]] = {}
        self.offset = 0

    def run(self, *events: dict[str, Any]) -> BatchResult:
        records = []
        for body in events:
            topic = TOPIC_OF.get(body["type"], ACTIVITY)
            key = body["subject"].encode()
            records.append(InputRecord(topic, 0, self.offset, key, orjson.dumps(body)))
            self.offset += 1
        result = process_batch(
            records, kind_of_topic=KINDS, load_state=self.states.get, scorer=self.scorer, limits=Limits(),
            now=NOW, sample_rate=self.sample_rate,
        )  # fmt: skip
        for lead_id, (state, _) in result.states.items():
            self.states[lead_id] = state.to_dict()
        return result


def event(
    lead: str, n: int, type_: str = "lead.page_viewed", *, days_ago: float, **data: Any
) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "lead.page_viewed": {"url": "https://example.com/pricing", "duration_s": 40},
        "lead.profile_updated": {
            "company_size": 250,
            "industry": "software",
            "job_title": "VP Sales",
        },
    }
    return {
        "specversion": "1.0",
        "id": f"{lead}.{n}",
        "source": "/test",
        "type": type_,
        "subject": lead,
        "time": (NOW - timedelta(days=days_ago)).isoformat(),
        "data": {**defaults.get(type_, {}), **data},
    }


def vector_of(*events: dict[str, Any]) -> np.ndarray:
    """The vector of a lead that saw exactly ``events``, computed here."""
    state = LeadState(events[0]["subject"])
    for body in events:
        apply_event(state, lead_event_adapter.validate_python(body))
    return to_vector(state)


def test_an_example_is_the_vector_just_before_the_outcome(scorer: Scorer) -> None:
    worker = Worker(scorer)
    before = [
        event("a", 1, "lead.profile_updated", days_ago=9),
        event("a", 2, days_ago=8),
        event("a", 3, "lead.demo_requested", days_ago=6),
    ]
    worker.run(*before)
    outcome = event("a", 4, "lead.converted", days_ago=5)
    result = worker.run(outcome)

    assert result.examples_skipped == 0
    [example] = result.examples
    assert example.id == example_id("a", "a.4")
    assert (example.lead_id, example.label, example.outcome) == ("a", 1, "converted")
    assert example.outcome_event_id == "a.4"
    assert example.outcome_time == NOW - timedelta(days=5)
    assert example.feature_time == NOW - timedelta(days=6)
    assert example.model_version == scorer.version
    np.testing.assert_allclose(example.features, vector_of(*before), rtol=0, atol=1e-12)
    assert example.probability == pytest.approx(
        float(scorer.probabilities(vector_of(*before)[None, :])[0])
    )
    assert result.samples == [], "an outcome is a label, not a rescore"


def test_a_disqualification_is_label_zero_and_an_outcome_alone_has_no_feature_time(
    scorer: Scorer,
) -> None:
    result = Worker(scorer).run(event("b", 1, "lead.disqualified", days_ago=3))
    [example] = result.examples
    assert (example.label, example.outcome, example.feature_time) == (0, "disqualified", None)
    assert len(example.features) == len(FEATURE_NAMES)


def test_an_event_after_the_outcome_that_arrived_first_means_no_example(scorer: Scorer) -> None:
    worker = Worker(scorer)
    worker.run(event("c", 1, days_ago=9))
    worker.run(event("c", 2, days_ago=1))  # event time after the outcome below, applied before it
    result = worker.run(event("c", 3, "lead.converted", days_ago=2))
    assert result.examples == []
    assert result.examples_skipped == 1


def test_the_same_holds_within_one_batch(scorer: Scorer) -> None:
    result = Worker(scorer).run(
        event("c", 1, days_ago=9),
        event("c", 2, days_ago=1),
        event("c", 3, "lead.converted", days_ago=2),
    )
    assert (result.examples, result.examples_skipped) == ([], 1)


def test_a_later_event_in_the_same_batch_does_not_reach_the_example(scorer: Scorer) -> None:
    before = [event("d", 1, "lead.profile_updated", days_ago=9), event("d", 2, days_ago=8)]
    outcome = event("d", 3, "lead.disqualified", days_ago=5)
    after = [event("d", 4, "lead.demo_requested", days_ago=4), event("d", 5, days_ago=3)]
    result = Worker(scorer).run(*before, outcome, *after)

    [example] = result.examples
    np.testing.assert_allclose(example.features, vector_of(*before), rtol=0, atol=1e-12)
    assert example.feature_time == NOW - timedelta(days=8)
    # The activity after the outcome still rescored the lead (the sample sees it); only
    # the example is frozen at the outcome.
    [sample] = result.samples
    np.testing.assert_allclose(sample.features, vector_of(*before, *after), rtol=0, atol=1e-12)
    assert not np.allclose(sample.features, example.features)


def test_a_repeated_or_second_outcome_gives_no_second_example(scorer: Scorer) -> None:
    worker = Worker(scorer)
    first = event("e", 2, "lead.converted", days_ago=5)
    assert len(worker.run(event("e", 1, days_ago=9), first).examples) == 1
    repeat = worker.run(first)
    assert (repeat.examples, repeat.examples_skipped, repeat.duplicates) == ([], 0, 1)
    second = worker.run(event("e", 3, "lead.disqualified", days_ago=4))
    assert (second.examples, second.examples_skipped) == ([], 0)
    # Within one batch too.
    both = Worker(scorer).run(
        event("f", 1, days_ago=9),
        event("f", 2, "lead.converted", days_ago=5),
        event("f", 2, "lead.converted", days_ago=5),
        event("f", 3, "lead.disqualified", days_ago=4),
    )  # fmt: skip
    assert [e.outcome_event_id for e in both.examples] == ["f.2"]


def test_every_rescored_lead_gives_one_sample(scorer: Scorer) -> None:
    result = Worker(scorer).run(
        event("g", 1, days_ago=3),
        event("g", 2, days_ago=2),
        event("h", 1, "lead.profile_updated", days_ago=2),
    )  # fmt: skip
    samples = {s.lead_id: s for s in result.samples}
    assert sorted(samples) == ["g", "h"]
    g = samples["g"]
    assert g.model_version == scorer.version
    assert g.event_time == NOW - timedelta(days=2)
    assert g.scored_at == NOW
    np.testing.assert_allclose(
        g.features, vector_of(event("g", 1, days_ago=3), event("g", 2, days_ago=2))
    )
    assert g.probability == pytest.approx(float(scorer.probabilities(np.asarray([g.features]))[0]))


def test_sample_rate_zero_gives_no_samples_but_the_same_scores(scorer: Scorer) -> None:
    events = [event(f"l{i}", 1, days_ago=2) for i in range(20)]
    none = Worker(scorer, sample_rate=0.0).run(*events)
    every = Worker(scorer, sample_rate=1.0).run(*events)
    assert none.samples == [] and len(every.samples) == 20
    assert [s.model_dump() for s in none.scores] == [s.model_dump() for s in every.scores]


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    ids = [f"ev-{i}" for i in range(20_000)]
    first = [sampled(i, 0.3) for i in ids]
    assert first == [sampled(i, 0.3) for i in ids]
    assert 0.28 < sum(first) / len(ids) < 0.32
    # A lower rate samples a subset of a higher one (the same hash threshold, lower).
    assert all(a or not b for a, b in zip(first, (sampled(i, 0.1) for i in ids)))
    assert all(sampled(i, 1.0) for i in ids[:100]) and not any(sampled(i, 0.0) for i in ids[:100])


def test_a_replayed_batch_samples_the_same_leads(scorer: Scorer) -> None:
    events = [event(f"m{i}", 1, days_ago=2) for i in range(200)]
    a = Worker(scorer, sample_rate=0.5).run(*events)
    b = Worker(scorer, sample_rate=0.5).run(*events)
    assert 60 < len(a.samples) < 140
    assert [s.lead_id for s in a.samples] == [s.lead_id for s in b.samples]
