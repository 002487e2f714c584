"""Point-in-time training sets: no leakage from after a snapshot, honest labels, any log."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, to_vector
from leadscore.models.training.candidates import TrainConfig
from leadscore.models.training.dataset import TrainingSet, build_training_set
from leadscore.models.training.folds import TrainingData
from leadscore.models.training.train import train
from leadscore.schemas.events import lead_event_adapter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}


def ev(
    lead: str, day: float, etype: str, data: dict[str, Any] | None = None, eid: str | None = None
) -> dict[str, Any]:
    """One CloudEvent as a plain dict, ``day`` days after T0."""
    return {
        "specversion": "1.0",
        "id": eid or f"{lead}-{etype}-{day}",
        "source": "test",
        "type": f"lead.{etype}",
        "time": (T0 + timedelta(days=day)).isoformat(),
        "subject": lead,
        "data": data if data is not None else {},
    }


def view(lead: str, day: float, url: str = "/blog", seconds: float = 30.0) -> dict[str, Any]:
    return ev(lead, day, "page_viewed", {"url": url, "duration_s": seconds})


def synthetic_events(n_leads: int, seed: int, days: float = 150.0) -> list[dict[str, Any]]:
    """A tiny lead simulator: intent drives activity, demos and conversion; log in random order."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(n_leads):
        lead = f"lead-{n:04d}"
        intent = rng.gauss(0.0, 1.0)
        start = rng.uniform(0, days - 40)
        events.append(
            ev(
                lead,
                start,
                "profile_updated",
                {
                    "company_size": rng.choice([5, 50, 500, 5000]),
                    "industry": rng.choice(["software", "retail", "banking", "healthcare"]),
                    "seniority": rng.choice(["individual", "manager", "director", "vp"]),
                    "lead_source": rng.choice(["organic", "ppc", "referral", "event"]),
                },
            )
        )
        converts = rng.random() < 1 / (1 + np.exp(-(1.8 * intent - 1.0)))
        outcome_day = start + rng.uniform(5, 60)
        t = start
        for k in range(int(rng.expovariate(1.0) * 8 * (1.5 + intent)) + 1):
            t += rng.expovariate(1.0 / (3.0 / (1.2 + max(intent, -1.0))))
            if t >= outcome_day or t >= days:
                break
            r = rng.random()
            if r < 0.5:
                events.append(
                    view(
                        lead,
                        t,
                        rng.choice(["/blog", "/docs", "/pricing"]) if intent > 0 else "/blog",
                    )
                )
            elif r < 0.7:
                events.append(ev(lead, t, "email_opened"))
            elif r < 0.8 + 0.05 * intent:
                events.append(
                    ev(lead, t, "content_downloaded", {"asset": f"wp-{k}", "kind": "whitepaper"})
                )
            elif intent > 0.3 and r < 0.9:
                events.append(ev(lead, t, "demo_requested"))
            else:
                events.append(
                    ev(lead, t, "call_logged", {"answered": rng.random() < 0.5, "duration_s": 120})
                )
        if outcome_day < days:
            if converts:
                events.append(ev(lead, outcome_day, "converted"))
            elif rng.random() < 0.5:
                events.append(ev(lead, outcome_day, "disqualified"))
    rng.shuffle(events)
    return events


def replay_until(events: list[dict[str, Any]], lead: str, t: float) -> np.ndarray:
    """The vector of ``lead`` from only its events at or before ``t`` (independent replay)."""
    state = LeadState(lead_id=lead)
    for raw in events:
        e = lead_event_adapter.validate_python(raw)
        if e.subject == lead and e.time.timestamp() <= t:
            apply_event(state, e)
    return to_vector(state)


# --- hand-written logs -----------------------------------------------------------------------


def test_labels_horizon_outcome_cut_and_censoring() -> None:
    events = [
        view("a", 0),
        view("a", 10),
        view("a", 20),
        ev("a", 25, "converted"),
        view("a", 26),
        view("b", 0),
        view("b", 50),
        ev("b", 60, "disqualified"),
        view("c", 0),
        ev("c", 40, "converted"),
        view("d", 95),  # its 30-day horizon passes the end of the log: label unknown, dropped
        ev("z", 100, "email_opened"),  # the log ends on day 100
    ]
    ts = build_training_set(events, horizon_days=30, snapshots_per_lead=None)
    rows = {
        (lead, round((t - T0.timestamp()) / 86400)): int(label)
        for lead, t, label in zip(ts.lead_ids, ts.snapshot_times, ts.y, strict=True)
    }
    assert rows == {
        ("a", 0): 1,
        ("a", 10): 1,
        ("a", 20): 1,  # none on day 26: after the outcome
        ("b", 0): 0,
        ("b", 50): 0,
        ("c", 0): 0,  # converts on day 40: outside the 30-day horizon
    }
    assert ts.as_of == pytest.approx((T0 + timedelta(days=100)).timestamp())
    assert ts.X.shape == (6, len(FEATURE_NAMES))
    assert ts.class_balance == {"negative": 3.0, "positive": 3.0, "positive_rate": 0.5}


def test_snapshot_sees_events_at_its_time_and_nothing_later() -> None:
    events = [
        ev("a", 1, "profile_updated", {"company_size": 100}),
        view("a", 2, "/pricing"),
        ev("a", 2, "email_opened", eid="same-time"),
        ev("a", 3, "demo_requested"),
        ev("a", 3.5, "profile_updated", {"company_size": 10000}),
        ev("z", 60, "email_opened"),
    ]
    ts = build_training_set(events, snapshots_per_lead=None)
    first = ts.X[0]
    assert first[IDX["high_intent_page_views"]] == 1
    assert first[IDX["email_opens"]] == 1  # same timestamp as the snapshot: already happened
    assert first[IDX["demo_requests"]] == 0
    assert first[IDX["company_size_log10"]] == pytest.approx(2.0)
    assert ts.X[1][IDX["demo_requests"]] == 1
    assert ts.X[1][IDX["company_size_log10"]] == pytest.approx(2.0)  # the day-3.5 update is later


def test_repeated_ids_and_validated_events_are_accepted() -> None:
    raw = [view("a", 1), view("a", 1), view("a", 2), ev("z", 60, "email_opened")]
    validated = [lead_event_adapter.validate_python(e) for e in raw]
    from_dicts = build_training_set(raw, snapshots_per_lead=None)
    from_models = build_training_set(validated, snapshots_per_lead=None)
    np.testing.assert_array_equal(from_dicts.X, from_models.X)
    assert from_dicts.n_events == 3  # the repeat is dropped
    assert from_dicts.X[-1][IDX["page_views"]] == 2


def test_invalid_records_raise_or_are_counted() -> None:
    bad = {"specversion": "1.0", "id": "x", "type": "lead.page_viewed"}
    events = [view("a", 1), bad, ev("z", 60, "email_opened")]
    with pytest.raises(ValueError, match=r"event #1 \(id='x'\)"):
        build_training_set(events)
    ts = build_training_set(events, skip_invalid=True)
    assert ts.n_invalid == 1 and len(ts) == 1


def test_empty_log_gives_an_empty_set() -> None:
    ts = build_training_set([])
    assert ts.X.shape == (0, len(FEATURE_NAMES)) and len(ts) == 0 and ts.training_window is None


# --- leakage on a synthetic log ----------------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> list[dict[str, Any]]:
    return synthetic_events(300, seed=7)


def test_every_row_equals_a_replay_of_only_earlier_events(log) -> None:  # type: ignore[no-untyped-def]
    ts = build_training_set(log, snapshots_per_lead=2, seed=1)
    assert len(ts) > 200
    for row in range(0, len(ts), 7):
        expected = replay_until(log, ts.lead_ids[row], ts.snapshot_times[row])
        np.testing.assert_allclose(ts.X[row], expected, rtol=1e-12, atol=1e-12)


def test_perturbing_events_after_a_snapshot_leaves_it_unchanged(log) -> None:  # type: ignore[no-untyped-def]
    as_of = T0 + timedelta(days=150)
    cut = T0 + timedelta(days=70)
    perturbed = []
    for e in log:
        if datetime.fromisoformat(e["time"]) > cut:
            e = dict(e)
            if e["type"] == "lead.page_viewed":
                e["data"] = {"url": "/pricing", "duration_s": 9999.0}
            elif e["type"] == "lead.profile_updated":
                e["data"] = {"company_size": 1, "industry": "government"}
        perturbed.append(e)
    # ... and add strong future activity for every lead
    perturbed += [
        ev(f"lead-{n:04d}", 71 + n % 50, "demo_requested", eid=f"extra-{n}") for n in range(300)
    ]

    kwargs = dict(snapshots_per_lead=None, as_of=as_of, seed=3)
    base = build_training_set(log, **kwargs)
    other = build_training_set(perturbed, **kwargs)
    before = base.snapshot_times <= cut.timestamp()
    before_other = other.snapshot_times <= cut.timestamp()
    assert before.sum() > 100
    np.testing.assert_array_equal(base.lead_ids[before], other.lead_ids[before_other])
    np.testing.assert_array_equal(base.snapshot_times[before], other.snapshot_times[before_other])
    np.testing.assert_array_equal(base.X[before], other.X[before_other])
    # the perturbation did change what comes after the cut
    demos_after = lambda ts, mask: int((ts.X[~mask][:, IDX["demo_requests"]] > 0).sum())  # noqa: E731
    assert demos_after(other, before_other) > demos_after(base, before)


def test_labels_match_the_outcomes_and_no_row_is_at_or_after_one(log) -> None:  # type: ignore[no-untyped-def]
    ts = build_training_set(log, snapshots_per_lead=None, horizon_days=30)
    outcomes: dict[str, list[tuple[float, str]]] = {}
    for e in log:
        if e["type"] in ("lead.converted", "lead.disqualified"):
            outcomes.setdefault(e["subject"], []).append(
                (datetime.fromisoformat(e["time"]).timestamp(), e["type"])
            )
    for lead, t, label in zip(ts.lead_ids, ts.snapshot_times, ts.y, strict=True):
        lead_outcomes = outcomes.get(lead, [])
        assert all(t < ot for ot, _ in lead_outcomes)
        converted = any(
            kind == "lead.converted" and t < ot <= t + 30 * 86400 for ot, kind in lead_outcomes
        )
        assert label == int(converted)
        assert t + 30 * 86400 <= ts.as_of


def test_seeded_and_independent_of_other_leads(log) -> None:  # type: ignore[no-untyped-def]
    a = build_training_set(log, seed=5)
    b = build_training_set(list(reversed(log)), seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.snapshot_times, b.snapshot_times)
    c = build_training_set(log, seed=6)
    assert not np.array_equal(a.snapshot_times, c.snapshot_times)
    # dropping other leads does not change a lead's draw (as_of held fixed)
    one = [e for e in log if e["subject"] == "lead-0001"]
    alone = build_training_set(one, seed=5, as_of=datetime.fromtimestamp(a.as_of, tz=UTC))
    mask = a.lead_ids == "lead-0001"
    np.testing.assert_array_equal(alone.snapshot_times, a.snapshot_times[mask])


def test_training_on_a_synthetic_log_learns_something(log) -> None:  # type: ignore[no-untyped-def]
    ts = build_training_set(log, seed=0)
    assert isinstance(ts, TrainingSet)
    data = TrainingData(X=ts.X, y=ts.y, feature_names=ts.feature_names, groups=ts.lead_ids)
    result = train(data, TrainConfig(folds=3, search="none", compare=("ensemble",)))
    (ensemble,) = result.report["models"]
    assert ensemble["cv"]["roc_auc"] > 0.65
    assert result.model.predict_proba(ts.X[:3]).shape == (3, 2)
