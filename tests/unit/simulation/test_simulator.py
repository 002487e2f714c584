"""The lead simulator: valid, ordered, deterministic events with a learnable, shiftable truth."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from leadscore.models.features.catalog import (
    INDUSTRIES,
    INDUSTRY_ALIASES,
    normalize_category,
    seniority_of,
)
from leadscore.schemas.decode import EventKind, decode_event, kind_of
from leadscore.schemas.events import ACTIVITY_TYPES, EVENT_TYPES, lead_event_adapter
from leadscore.simulation.config import DEFAULT_REGIME, SHIFTED_REGIME, Regime, Shift, SimConfig
from leadscore.simulation.files import TRUTH_COLUMNS, read_jsonl, write_labeled_files
from leadscore.simulation.leads import INDUSTRY_LABELS, SENIORITIES
from leadscore.simulation.learnability import measure_learnability
from leadscore.simulation.simulator import Simulator, live_events, simulate, simulate_with_truth

START = datetime(2026, 1, 5, tzinfo=UTC)


def _config(**changes: object) -> SimConfig:
    base: dict[str, object] = {"n_leads": 300, "start": START, "span_days": 60.0, "seed": 3}
    base.update(changes)
    return SimConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def run() -> tuple[list[dict], list]:
    return simulate_with_truth(_config())


def test_same_seed_same_events_and_truth() -> None:
    first = simulate_with_truth(_config(n_leads=120))
    second = simulate_with_truth(_config(n_leads=120))
    assert first == second
    other_events, _ = simulate_with_truth(_config(n_leads=120, seed=4))
    assert other_events != first[0]


def test_every_event_decodes_on_its_topic(run: tuple[list[dict], list]) -> None:
    events, _ = run
    assert len(events) > 3_000
    end = START + timedelta(days=60)
    for event in events:
        decoded = decode_event(orjson.dumps(event), now=end, expected_kind=kind_of(event["type"]))
        assert decoded.subject == event["subject"]
    assert {e["type"] for e in events} == EVENT_TYPES  # every type occurs
    assert {e["source"] for e in events} >= {
        "sim/web-tracker",
        "sim/email",
        "sim/crm",
        "sim/call-center",
    }


def test_events_are_in_time_order_within_the_span(run: tuple[list[dict], list]) -> None:
    events, truth = run
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert times[0] >= "2026-01-05T" and times[-1] < "2026-03-06T"
    assert all(t.endswith("Z") for t in times)
    assert len({e["id"] for e in events}) == len(events)
    assert {e["subject"] for e in events} == {t.lead_id for t in truth}


def test_each_lead_starts_with_its_profile_and_ends_at_its_outcome(
    run: tuple[list[dict], list],
) -> None:
    events, truth = run
    by_lead: dict[str, list[dict]] = {}
    for event in events:
        by_lead.setdefault(event["subject"], []).append(event)
    for lead in truth:
        lead_events = by_lead[lead.lead_id]
        assert lead_events[0]["type"] == "lead.profile_updated"
        first_t = datetime.fromisoformat(lead_events[0]["time"]).timestamp()
        assert lead.created_at.timestamp() - 0.001 < first_t <= lead.created_at.timestamp()
        outcomes = [e for e in lead_events if kind_of(e["type"]) is EventKind.OUTCOME]
        if lead.outcome is None:
            assert outcomes == []
        else:
            assert [e["type"] for e in outcomes] == [f"lead.{lead.outcome}"]
            assert lead_events[-1] is outcomes[0]  # activity stops at the outcome
        assert lead.converted == (lead.outcome == "converted")
        assert 0 < lead.intent < 1 and 0 < lead.fit < 1


def test_conversion_rates_are_in_range() -> None:
    truth: list = []
    for _ in simulate(_config(n_leads=4_000, span_days=90.0), on_lead=truth.append):
        pass
    eventual = np.mean([t.will_convert for t in truth])
    observed = np.mean([t.converted for t in truth])
    assert 0.12 <= eventual <= 0.18  # base_conversion_rate = 0.15
    assert 0.05 <= observed <= 0.15  # censored at the end of the span
    converters = [t for t in truth if t.will_convert]
    others = [t for t in truth if not t.will_convert]
    assert np.mean([t.intent for t in converters]) > np.mean([t.intent for t in others]) + 0.1
    assert np.mean([t.fit for t in converters]) > np.mean([t.fit for t in others]) + 0.05


def test_base_conversion_rate_is_honoured() -> None:
    truth: list = []
    for _ in simulate(_config(n_leads=3_000, base_conversion_rate=0.05), on_lead=truth.append):
        pass
    assert 0.03 <= np.mean([t.will_convert for t in truth]) <= 0.07


def test_signal_is_learnable_but_not_trivial() -> None:
    report = measure_learnability(_config(n_leads=3_000, span_days=60.0, seed=11), seed=11)
    assert 0.03 <= report["conversion_rate"] <= 0.2
    assert 0.05 <= report["positive_rate"] <= 0.35
    assert 0.7 <= report["auc_hgb"] <= 0.97, report
    assert 0.7 <= report["auc_logreg"] <= 0.97, report


def test_shift_changes_industry_mix_email_opens_and_what_converts() -> None:
    at = START + timedelta(days=30)
    events, truth = simulate_with_truth(_config(n_leads=4_000, seed=5, shift=Shift(at=at)))
    profile: dict[str, dict] = {}
    for e in events:
        if e["type"] == "lead.profile_updated":
            profile.setdefault(e["subject"], {}).update(e["data"])
    before = [t for t in truth if t.regime == 0]
    after = [t for t in truth if t.regime == 1]
    assert all(t.created_at < at for t in before) and all(t.created_at >= at for t in after)

    def industry(lead_id: str) -> str | None:
        return normalize_category(profile[lead_id].get("industry"), INDUSTRIES, INDUSTRY_ALIASES)

    def share(leads: list, name: str) -> float:
        return float(np.mean([industry(t.lead_id) == name for t in leads]))

    assert share(after, "healthcare") > share(before, "healthcare") + 0.06
    assert share(after, "software") < share(before, "software") - 0.06

    def conversion(leads: list, small: bool) -> float:
        sized = [t for t in leads if profile[t.lead_id].get("company_size")]
        return np.mean(
            [t.will_convert for t in sized if (profile[t.lead_id]["company_size"] < 50) == small]
        )

    assert conversion(before, small=False) > conversion(before, small=True) + 0.03
    assert conversion(after, small=True) > conversion(after, small=False) + 0.03

    iso_at = at.strftime("%Y-%m-%dT%H")
    opens_before = sum(
        1 for e in events if e["type"] == "lead.email_opened" and "2026-01-20" <= e["time"] < iso_at
    )
    opens_after = sum(
        1 for e in events if e["type"] == "lead.email_opened" and iso_at <= e["time"] < "2026-02-19"
    )
    assert opens_after < 0.8 * opens_before


def test_live_events_never_run_ahead_of_the_clock() -> None:
    clock_t = iter(itertools.count(START.timestamp() + 90 * 86_400, 3_600.0))
    clock = lambda: float(next(clock_t))  # noqa: E731 - each call advances an hour
    truth: list = []
    events = list(
        live_events(
            _config(n_leads=60, span_days=10.0), on_lead=truth.append, clock=clock, cohorts=3
        )
    )
    cohorts = Counter(e["subject"].rsplit("-", 2)[1] for e in events)
    assert set(cohorts) == {"0", "1", "2"}
    assert len({e["id"] for e in events}) == len(events)
    assert len(truth) == 180
    # Cohort k ends at the clock reading taken when it started; the reading is never exceeded.
    latest = datetime.fromtimestamp(START.timestamp() + 90 * 86_400 + 3 * 3_600.0, UTC)
    now = latest.isoformat().replace("+00:00", "Z")
    assert max(e["time"] for e in events) < now
    for event in events[:500]:
        decode_event(orjson.dumps(event), now=latest)


def test_live_shift_switches_whole_cohorts_at_wall_clock_time() -> None:
    t0 = START.timestamp() + 90 * 86_400
    readings = iter([t0, t0, t0 + 7_200])  # run id, cohort 0, cohort 1
    shift = Shift(at=datetime.fromtimestamp(t0 + 3_600, UTC))
    truth: list = []
    sim = Simulator(_config(n_leads=50, span_days=10.0, shift=shift))
    for _ in sim.live_events(on_lead=truth.append, clock=lambda: next(readings), cohorts=2):
        pass
    regimes = {(t.lead_id.rsplit("-", 2)[1], t.regime) for t in truth}
    assert regimes == {("0", 0), ("1", 1)}


def test_span_ends_now_when_no_start_is_given() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    events = list(simulate(_config(n_leads=30, start=None, span_days=5.0), now=now))
    assert events[-1]["time"] < "2026-11-26T12:00:00.001Z"
    assert events[0]["time"] >= "2026-11-21T12"


def test_labeled_files_round_trip(tmp_path) -> None:
    config = _config(n_leads=80)
    n_events, n_leads = write_labeled_files(
        config, tmp_path / "events.jsonl", tmp_path / "truth.csv"
    )
    events, truth = simulate_with_truth(config)
    assert (n_events, n_leads) == (len(events), len(truth))
    assert list(read_jsonl(tmp_path / "events.jsonl")) == events
    with open(tmp_path / "truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == TRUTH_COLUMNS
    assert [r["lead_id"] for r in rows] == [t.lead_id for t in truth]
    assert [r["converted"] == "1" for r in rows] == [t.converted for t in truth]
    converted = next(r for r in rows if r["converted"] == "1")
    assert converted["outcome"] == "converted" and converted["outcome_time"].endswith("Z")


def test_profiles_speak_the_feature_vocabulary() -> None:
    for seniority, (_, _, titles) in SENIORITIES.items():
        for title in titles:
            assert seniority_of({"job_title": title}) == seniority, title
    for industry, labels in INDUSTRY_LABELS.items():
        for label in labels:
            assert normalize_category(label, INDUSTRIES, INDUSTRY_ALIASES) == industry, label


def test_events_feed_the_feature_state(run: tuple[list[dict], list]) -> None:
    from leadscore.models.features.state import LeadState, apply_event
    from leadscore.models.features.vector import to_vector

    events, truth = run
    lead = next(t for t in truth if t.converted)
    state = LeadState(lead.lead_id)
    for e in events:
        if e["subject"] == lead.lead_id:
            assert apply_event(state, lead_event_adapter.validate_python(e))
    assert state.outcome == "converted" and state.activity_count > 0
    assert sum(state.counts.get(t, 0) for t in ACTIVITY_TYPES) == state.activity_count
    assert to_vector(state).any()


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Shift(at=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="base_conversion_rate"):
        SimConfig(base_conversion_rate=0.9)
    with pytest.raises(ValueError, match="unknown industries"):
        Regime(industry_weights={"crypto": 1.0}, industry_fit={})
    assert DEFAULT_REGIME != SHIFTED_REGIME
