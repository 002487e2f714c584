"""Feature state in event time: same events give the same vector, whatever the wall clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from leadscore.models.features.catalog import SENIORITY_RANK
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    NUMERIC_FEATURES,
    describe,
    state_record,
    to_matrix,
    to_vector,
)
from leadscore.schemas.events import lead_event_adapter

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def ev(i: int, etype: str, data: dict, days: float, lead: str = "lead-1") -> object:
    return lead_event_adapter.validate_python(
        {
            "specversion": "1.0",
            "id": f"e{i}",
            "source": "test",
            "type": etype,
            "time": T0 + timedelta(days=days),
            "subject": lead,
            "data": data,
        }
    )


def journey() -> list:
    return [
        ev(
            1,
            "lead.profile_updated",
            {
                "company_size": 500,
                "industry": "Banking",
                "job_title": "Head of Ops",
                "lead_source": "Referral",
                "contact_fields": {"email": True, "phone": True, "company": True},
            },
            0,
        ),
        ev(2, "lead.page_viewed", {"url": "/blog/x", "duration_s": 30}, 0.1),
        ev(3, "lead.email_opened", {}, 1),
        ev(4, "lead.email_clicked", {}, 1.01),
        ev(5, "lead.page_viewed", {"url": "/pricing", "duration_s": 90}, 1.02),
        ev(6, "lead.content_downloaded", {"asset": "wp-a", "kind": "whitepaper"}, 3),
        ev(7, "lead.content_downloaded", {"asset": "wp-a", "kind": "whitepaper"}, 4),
        ev(8, "lead.content_downloaded", {"asset": "cs-b", "kind": "case_study"}, 5),
        ev(9, "lead.call_logged", {"answered": False}, 6),
        ev(
            10,
            "lead.call_logged",
            {"answered": True, "duration_s": 600, "outcome": "interested"},
            7,
        ),
        ev(11, "lead.demo_requested", {}, 8),
        ev(12, "lead.social_engaged", {"network": "linkedin", "action": "share"}, 9),
        ev(13, "lead.referral_made", {}, 10),
        ev(14, "lead.meeting_held", {"duration_min": 45}, 12),
        ev(15, "lead.form_submitted", {"form_id": "contact"}, 12.5),
    ]


def vector_of(events: list) -> np.ndarray:
    state = LeadState("lead-1")
    for e in events:
        apply_event(state, e)
    return to_vector(state)


def value(v: np.ndarray, name: str) -> float:
    return float(v[FEATURE_NAMES.index(name)])


def test_features_count_each_family() -> None:
    v = vector_of(journey())
    assert value(v, "page_views") == 2
    assert value(v, "high_intent_page_views") == 1
    assert value(v, "page_minutes") == pytest.approx(2.0)
    assert value(v, "email_click_rate") == 1.0
    assert value(v, "downloads") == 3
    assert value(v, "distinct_assets") == 2
    assert value(v, "calls") == 2
    assert value(v, "call_answer_rate") == 0.5
    assert value(v, "call_minutes") == pytest.approx(10.0)
    assert value(v, "demo_requests") == 1
    assert value(v, "meetings") == 1
    assert value(v, "referrals") == 1
    assert value(v, "social_engagements") == 1
    assert value(v, "activities") == 14
    assert value(v, "tenure_days") == pytest.approx(12.5)
    assert value(v, "recency_days") == 0.0
    assert value(v, "seniority_rank") == SENIORITY_RANK["director"]
    assert value(v, "industry=financial_services") == 1.0
    assert value(v, "lead_source=referral") == 1.0
    assert value(v, "contact_completeness") == pytest.approx(0.5)


def test_same_events_same_order_give_identical_vectors() -> None:
    assert np.array_equal(vector_of(journey()), vector_of(journey()))


def test_vector_does_not_depend_on_arrival_order() -> None:
    events = journey()
    expected = vector_of(events)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = events[:]
        rng.shuffle(shuffled)
        np.testing.assert_allclose(vector_of(shuffled), expected, rtol=1e-12, atol=1e-12)


def test_decayed_counts_halve_after_one_half_life() -> None:
    state = LeadState("lead-1")
    apply_event(state, ev(1, "lead.email_opened", {}, 0))
    apply_event(state, ev(2, "lead.profile_updated", {"country": "DE"}, 7))  # 7 days later
    assert value(to_vector(state), "behavioral_recent") == pytest.approx(0.5)
    assert value(to_vector(state), "recency_days") == pytest.approx(7.0)


def test_repeated_event_id_changes_nothing() -> None:
    state = LeadState("lead-1")
    events = journey()
    for e in events:
        assert apply_event(state, e) is True
    before = state.to_dict()
    for e in events:
        assert apply_event(state, e) is False
    assert state.to_dict() == before


def test_dedupe_window_is_bounded() -> None:
    state = LeadState("lead-1")
    for i in range(50):
        apply_event(state, ev(i, "lead.email_opened", {}, i / 10), dedupe_window=10)
    assert len(state.seen_ids) == 10


def test_late_profile_update_does_not_overwrite_a_newer_one() -> None:
    state = LeadState("lead-1")
    apply_event(state, ev(1, "lead.profile_updated", {"industry": "retail"}, 5))
    apply_event(
        state, ev(2, "lead.profile_updated", {"industry": "software", "company_size": 10}, 1)
    )
    assert state.profile == {"industry": "retail", "company_size": 10}


def test_outcome_is_recorded_but_is_not_a_feature() -> None:
    events = journey()
    with_outcome = events + [ev(99, "lead.converted", {}, 12.5)]
    state = LeadState("lead-1")
    for e in with_outcome:
        apply_event(state, e)
    assert state.outcome == "converted"
    np.testing.assert_array_equal(to_vector(state), vector_of(events))


def test_state_round_trips_through_a_dict() -> None:
    state = LeadState("lead-1")
    for e in journey():
        apply_event(state, e)
    copy = LeadState.from_dict(state.to_dict())
    np.testing.assert_array_equal(to_vector(copy), to_vector(state))


def test_unseen_category_maps_to_other_and_missing_to_nothing() -> None:
    state = LeadState("lead-1")
    apply_event(state, ev(1, "lead.profile_updated", {"industry": "Underwater basket weaving"}, 0))
    v = to_vector(state)
    assert value(v, "industry=other") == 1.0
    assert sum(value(v, n) for n in FEATURE_NAMES if n.startswith("lead_source=")) == 0.0


def test_matrix_rows_equal_single_vectors() -> None:
    a, b = LeadState("a"), LeadState("b")
    for e in journey()[:5]:
        apply_event(a, e)
    x = to_matrix([a, b])
    np.testing.assert_array_equal(x[0], to_vector(a))
    np.testing.assert_array_equal(x[1], to_vector(b))


def test_every_feature_can_be_described() -> None:
    for name in FEATURE_NAMES:
        assert describe(name, 1.0)
        assert describe(name, 0.0)


def test_describe_never_fails_on_extreme_values() -> None:
    """Regression: describe() computed 10**value for every feature and overflowed the worker."""
    for name in FEATURE_NAMES:
        for value in (0.0, 1.0, 7.3, 1e6, -3.0):
            assert isinstance(describe(name, value), str)
    assert describe("company_size_log10", 0.0) == "company size unknown"


def test_an_outcome_never_changes_the_feature_vector() -> None:
    """Regression (found by the worker's integration tests): an outcome moved the time the
    vector is valued at, so a lead's score depended on when its label was consumed."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def ev(n: int, type_: str, days: float, data: dict | None = None):  # type: ignore[no-untyped-def]
        return lead_event_adapter.validate_python(
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "/t",
                "type": type_,
                "subject": "l",
                "time": (t0 + timedelta(days=days)).isoformat(),
                "data": data or {},
            }
        )

    views = [ev(i, "lead.page_viewed", i, {"url": "/pricing", "duration_s": 30}) for i in range(3)]
    outcome = ev(9, "lead.converted", 20)
    without, first, last = LeadState("l"), LeadState("l"), LeadState("l")
    for e in views:
        apply_event(without, e)
    for e in [outcome, *views]:
        apply_event(first, e)
    for e in [*views, outcome]:
        apply_event(last, e)
    assert np.array_equal(to_vector(first), to_vector(without))
    assert np.array_equal(to_vector(last), to_vector(without))
    assert first.outcome == last.outcome == "converted"


def test_the_stream_vector_is_the_fixed_table_pipeline_of_the_state_record() -> None:
    """One feature pipeline: a lead scored as a record (API, batch) gets the stream's vector."""
    from datetime import timedelta as td

    from leadscore.models.tabular.pipeline import FeaturePipeline
    from leadscore.simulation.config import SimConfig
    from leadscore.simulation.simulator import simulate

    pipeline = FeaturePipeline.fixed(NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert pipeline.feature_names == FEATURE_NAMES
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states: dict[str, LeadState] = {}
    for event in simulate(SimConfig(n_leads=150, span_days=30, seed=9, start=start - td(days=31))):
        parsed = lead_event_adapter.validate_python(event)
        state = states.setdefault(parsed.subject, LeadState(lead_id=parsed.subject))
        apply_event(state, parsed)
    assert len(states) > 100
    for state in states.values():
        np.testing.assert_array_equal(pipeline.transform_one(state_record(state)), to_vector(state))
