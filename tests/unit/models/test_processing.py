"""process_batch: decoding, event-time state, dedupe, re-emission, publish policy, failure isolation."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from leadscore.models.batch.outputs import recent_activity
from leadscore.models.batch.processing import process_batch
from leadscore.models.batch.records import InputRecord, Limits, home_partition
from leadscore.models.engine.compiled import CompiledModel
from leadscore.models.features.state import LeadState
from leadscore.models.features.vector import FEATURE_NAMES, to_vector
from leadscore.models.scoring.events import score_event_id
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy
from leadscore.models.training.dataset import build_training_set
from leadscore.models.training.ensemble import LeadScoringEnsemble
from leadscore.schemas.decode import EventKind
from leadscore.schemas.scores import LeadScored
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import simulate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACTIVITY, PROFILE, OUTCOME = "leads.activity.v1", "leads.profile.v1", "leads.outcome.v1"
KINDS = {ACTIVITY: EventKind.ACTIVITY, PROFILE: EventKind.PROFILE, OUTCOME: EventKind.OUTCOME}


@pytest.fixture(scope="module")
def model() -> CompiledModel:
    events = simulate(SimConfig(n_leads=400, span_days=90, seed=3, start=NOW - timedelta(days=91)))
    ts = build_training_set(events, horizon_days=30, seed=0)
    return (
        LeadScoringEnsemble(
            rf_params={"n_estimators": 15}, gb_params={"n_estimators": 20}, random_state=0
        )
        .fit(ts.X, ts.y)
        .compile(FEATURE_NAMES)
    )


def scorer_for(model: CompiledModel, change_threshold: int = 0) -> Scorer:
    policy = ScoringPolicy(
        grade_thresholds=(80, 60, 40), change_threshold=change_threshold, top_reasons=3
    )
    return Scorer(model, "v-test", policy)


class Store:
    """The table, as the worker keeps it: lead id -> state dict."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def load(self, lead_id: str) -> dict[str, Any] | None:
        return self.states.get(lead_id)

    def run(self, records: list[InputRecord], scorer: Scorer, limits: Limits = Limits()):  # type: ignore[no-untyped-def]
        result = process_batch(
            records,
            kind_of_topic=KINDS,
            load_state=self.load,
            scorer=scorer,
            limits=limits,
            now=NOW,
        )
        for lead_id, (state, _) in result.states.items():
            self.states[lead_id] = state.to_dict()
        return result


def event(
    lead: str, n: int, type_: str = "lead.page_viewed", *, days_ago: float = 1.0, **data: Any
) -> dict[str, Any]:
    defaults: dict[str, dict[str, Any]] = {
        "lead.page_viewed": {"url": "https://example.com/pricing", "duration_s": 40},
        "lead.demo_requested": {},
        "lead.profile_updated": {
            "company_size": 250,
            "industry": "software",
            "job_title": "VP Sales",
        },
        "lead.converted": {},
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


def record(
    body: dict[str, Any] | bytes | None,
    *,
    topic: str = ACTIVITY,
    offset: int = 0,
    key: bytes | None | str = "subject",
) -> InputRecord:
    value = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    if key == "subject":
        key = body["subject"].encode() if isinstance(body, dict) else None
    return InputRecord(topic=topic, partition=0, offset=offset, key=key, value=value)  # type: ignore[arg-type]


def test_scores_a_batch_with_one_event_per_changed_lead(model: CompiledModel) -> None:
    store = Store()
    records = [
        record(event("a", 1, "lead.profile_updated", days_ago=3), topic=PROFILE, offset=0),
        record(event("a", 2, days_ago=2), offset=1),
        record(event("b", 1, "lead.demo_requested"), offset=2),
        record(event("a", 3, "lead.demo_requested"), offset=3),
    ]
    result = store.run(records, scorer_for(model))

    assert result.applied == 4 and result.duplicates == 0 and not result.dead_letters
    assert sorted(s.lead_id for s in result.scores) == ["a", "b"]  # one per lead, not per event
    by_lead = {s.lead_id: s for s in result.scores}
    assert by_lead["a"].cause_event_id == "a.3"  # the last event that changed the lead
    assert result.states["a"][1] == 3  # stored with the partition of the lead's last record
    for score in result.scores:
        LeadScored.model_validate_json(orjson.dumps(score.model_dump(mode="json")))
        assert score.previous_score is None
        assert 0 <= score.score <= 100 and score.model_version == "v-test"
        assert len(score.reasons) == 3
        x = to_vector(LeadState.from_dict(store.states[score.lead_id]))
        assert score.id == score_event_id(score.lead_id, score.cause_event_id, "v-test", x, None)
    # The score is the model's, on exactly the state that was stored.
    x = to_vector(LeadState.from_dict(store.states["a"]))[None, :]
    assert by_lead["a"].probability == pytest.approx(model.predict_proba(x)[0, 1], abs=1e-6)


def test_explanation_adds_up_to_the_score(model: CompiledModel) -> None:
    policy = ScoringPolicy(
        grade_thresholds=(80, 60, 40), change_threshold=0, top_reasons=len(FEATURE_NAMES)
    )
    result = Store().run([record(event("a", 1, "lead.demo_requested"))], Scorer(model, "v", policy))
    (score,) = result.scores
    total = score.base_score + sum(r.contribution for r in score.reasons)
    assert total == pytest.approx(score.probability * 100, abs=0.05)


def test_second_score_says_what_changed_and_splits_fit_from_engagement(
    model: CompiledModel,
) -> None:
    store = Store()
    scorer = scorer_for(model)
    first = store.run(
        [record(event("a", 1, "lead.profile_updated"), topic=PROFILE, offset=0)], scorer
    ).scores[0]
    assert first.changes == []
    second = store.run([record(event("a", 2, "lead.demo_requested"), offset=1)], scorer).scores[0]

    assert second.changes, "a demo request moves some contribution"
    deltas = [abs(c.delta) for c in second.changes]
    assert deltas == sorted(deltas, reverse=True)
    for change in second.changes:
        assert change.delta == pytest.approx(
            change.contribution - change.previous_contribution, abs=2e-3
        )
    parts = second.components
    assert parts is not None
    assert parts.fit + parts.engagement == pytest.approx(sum(parts.families.values()), abs=1e-2)
    assert second.base_score + parts.fit + parts.engagement == pytest.approx(
        100 * second.probability, abs=0.05
    )


def test_repeated_event_ids_change_nothing(model: CompiledModel) -> None:
    store = Store()
    first = [
        record(event("a", 1), offset=0),
        record(event("a", 2, "lead.demo_requested"), offset=1),
    ]
    store.run(first, scorer_for(model))
    before = store.states["a"]

    again = store.run([record(event("a", 1), offset=5)], scorer_for(model))

    assert again.duplicates == 1 and again.applied == 0
    assert again.scores == []  # a.1 is not the cause of the last published score
    assert store.states["a"] == before


def test_repeat_of_the_cause_re_emits_the_same_score_event(model: CompiledModel) -> None:
    """After a crash between publish and commit, the replayed cause publishes the same event,
    exactly, even if the state moved on (below the threshold) or the model changed since."""
    store = Store()
    (original,) = store.run(
        [record(event("a", 1, "lead.demo_requested"))], scorer_for(model, 50)
    ).scores
    assert store.run([record(event("a", 2), offset=1)], scorer_for(model, 50)).scores == []
    other_model = Scorer(model, "v-newer", scorer_for(model).policy)

    (replayed,) = store.run(
        [record(event("a", 1, "lead.demo_requested"), offset=9)], other_model
    ).scores

    assert replayed.model_dump() == original.model_dump()
    # A repeat of an event that caused nothing re-publishes nothing.
    assert store.run([record(event("a", 2), offset=10)], other_model).scores == []


def test_same_id_means_same_content(model: CompiledModel) -> None:
    """A replay that scores the same cause on a different state must not reuse the id."""
    view = record(event("a", 1, "lead.page_viewed"))
    profile = record(event("a", 2, "lead.profile_updated", days_ago=2), topic=PROFILE, offset=1)
    (alone,) = Store().run([view], scorer_for(model)).scores
    (again,) = Store().run([view], scorer_for(model)).scores
    (with_profile,) = Store().run([profile, view], scorer_for(model)).scores
    assert again.id == alone.id and again.score == alone.score
    assert with_profile.cause_event_id == alone.cause_event_id
    assert with_profile.id != alone.id


def test_a_replay_in_the_same_batches_repeats_every_score_byte_for_byte(
    model: CompiledModel,
) -> None:
    """After a crash the worker replays from its committed offset, later, on another clock."""
    batches = [
        [record(event("a", 1, "lead.demo_requested", days_ago=3), offset=0)],
        [record(event("a", 2, days_ago=2), offset=1), record(event("b", 1), offset=2)],
        [record(event("a", 3, "lead.demo_requested", days_ago=1), offset=3)],
    ]
    stamped = [
        [dataclasses.replace(r, timestamp=1_780_000_000.0 + r.offset) for r in batch]
        for batch in batches
    ]

    def run(now: datetime) -> list[bytes]:
        store, out = Store(), []
        for batch in stamped:
            result = process_batch(
                batch, kind_of_topic=KINDS, load_state=store.load, scorer=scorer_for(model),
                limits=Limits(), now=now,
            )  # fmt: skip
            for lead_id, (state, _) in result.states.items():
                store.states[lead_id] = state.to_dict()
            out += [orjson.dumps(s.model_dump(mode="json")) for s in result.scores]
        return out

    first, replay = run(NOW), run(NOW + timedelta(hours=5))
    assert first == replay
    assert orjson.loads(first[0])["scored_at"].startswith("2026-05-28T20:26:40")  # record time


def test_ids_chain_so_a_different_history_never_reuses_a_later_id(model: CompiledModel) -> None:
    """Replayed in other batches, a lead gets a score it never had: every later id is new."""
    one, two, three = (
        record(event("a", 1, "lead.demo_requested", days_ago=3), offset=0),
        record(event("a", 2, days_ago=2), offset=1),
        record(event("a", 3, "lead.demo_requested", days_ago=1), offset=2),
    )
    before, after = Store(), Store()
    original = [
        s for batch in ([one, two], [three]) for s in before.run(batch, scorer_for(model)).scores
    ]
    replayed = [
        s for batch in ([one], [two], [three]) for s in after.run(batch, scorer_for(model)).scores
    ]
    assert [s.cause_event_id for s in original] == ["a.2", "a.3"]
    assert [s.cause_event_id for s in replayed] == ["a.1", "a.2", "a.3"]
    assert replayed[-1].score == original[-1].score
    assert not {s.id for s in replayed} & {s.id for s in original}


def test_order_within_event_time_does_not_matter(model: CompiledModel) -> None:
    events = [event("a", i, "lead.page_viewed", days_ago=10 - i) for i in range(6)]
    forward, backward = Store(), Store()
    forward.run([record(e, offset=i) for i, e in enumerate(events)], scorer_for(model))
    backward.run([record(e, offset=i) for i, e in enumerate(reversed(events))], scorer_for(model))
    assert (
        LeadState.from_dict(forward.states["a"]).counts
        == LeadState.from_dict(backward.states["a"]).counts
    )
    f, b = (LeadState.from_dict(s.states["a"]) for s in (forward, backward))
    assert f.score == b.score


def test_threshold_holds_back_small_moves(model: CompiledModel) -> None:
    store = Store()
    store.run(
        [record(event("a", 1, "lead.demo_requested"))], scorer_for(model, change_threshold=100)
    )
    result = store.run([record(event("a", 2), offset=1)], scorer_for(model, change_threshold=100))
    # First score is always published; a move < 100 points without a grade change is not.
    moved_grade = result.scores and result.scores[0].grade != result.scores[0].previous_grade
    assert result.scores == [] or moved_grade


def test_outcomes_update_state_but_do_not_rescore(model: CompiledModel) -> None:
    store = Store()
    store.run([record(event("a", 1, "lead.demo_requested"))], scorer_for(model))
    result = store.run(
        [record(event("a", 2, "lead.converted", days_ago=0.5), topic=OUTCOME, offset=1)],
        scorer_for(model),
    )
    assert result.applied == 1 and result.scores == []


def test_bad_records_become_dead_letters_and_the_rest_is_scored(model: CompiledModel) -> None:
    bad = [
        (b"not json", "not_json"),
        (b"", "empty"),
        (b"[1, 2]", "not_object"),
        (orjson.dumps({**event("x", 1), "type": "lead.teleported"}), "unknown_type"),
        (orjson.dumps(event("x", 2, "lead.page_viewed", duration_s=-4)), "schema"),
        (orjson.dumps(event("x", 3, "lead.profile_updated")), "wrong_topic"),
        (orjson.dumps(event("x", 4, days_ago=-1)), "future_time"),
        (orjson.dumps(event("x", 5, url="u" * 5000)), "too_large"),
    ]
    records = [record(value, offset=i, key=b"x") for i, (value, _) in enumerate(bad)]
    records.append(record(event("good", 1), offset=len(bad)))
    result = Store().run(records, scorer_for(model), Limits(max_event_bytes=2048))

    codes = {index: letter.reason_code for index, letter in result.dead_letters}
    assert codes == {i: code for i, (_, code) in enumerate(bad)}
    for index, letter in result.dead_letters:
        assert base64.b64decode(letter.value_b64 or "") == records[index].value
        assert (letter.topic, letter.offset) == (ACTIVITY, index)
        assert letter.reason
    assert [s.lead_id for s in result.scores] == ["good"]


def test_wrong_or_missing_key_is_rerouted_not_applied(model: CompiledModel) -> None:
    records = [
        record(event("a", 1), key=None),
        record(event("a", 2), key=b"someone-else", offset=1),
    ]
    result = Store().run(records, scorer_for(model))
    assert result.reroutes == [(0, "a", None), (1, "a", None)]
    assert result.applied == 0 and result.scores == [] and not result.states


def test_records_on_another_partition_than_the_leads_are_rerouted_there(
    model: CompiledModel,
) -> None:
    """A client with another partitioner (librdkafka's CRC32) must not split a lead's state."""
    home = home_partition(b"a", 8)
    stray = InputRecord(ACTIVITY, (home + 1) % 8, 0, b"a", orjson.dumps(event("a", 1)))
    at_home = InputRecord(ACTIVITY, home, 1, b"a", orjson.dumps(event("a", 2)))
    result = process_batch(
        [stray, at_home],
        kind_of_topic=KINDS,
        load_state=lambda _: None,
        scorer=scorer_for(model),
        limits=Limits(),
        now=NOW,
        partitions_of_topic={ACTIVITY: 8},
    )
    assert result.reroutes == [(0, "a", home)]
    assert result.applied == 1


def test_a_lead_that_cannot_be_scored_does_not_stop_the_others(model: CompiledModel) -> None:
    class Fussy:
        """A model that fails on any row with a demo request (feature index of demo_requests)."""

        column = FEATURE_NAMES.index("demo_requests")

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            if (x[:, self.column] > 0).any():
                raise FloatingPointError("model blew up")
            return model.predict_proba(x)

        def score_and_explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return model.score_and_explain(x)

    policy = ScoringPolicy(grade_thresholds=(80, 60, 40), change_threshold=0, top_reasons=3)
    store = Store()
    records = [
        record(event("ok", 1), offset=0),
        record(event("bad", 1, "lead.demo_requested"), offset=1),
    ]
    result = store.run(records, Scorer(Fussy(), "v", policy))  # type: ignore[arg-type]

    assert [s.lead_id for s in result.scores] == ["ok"]
    assert [(i, "model blew up" in reason) for i, reason in result.scoring_failures] == [(1, True)]
    assert [(i, letter.reason_code) for i, letter in result.dead_letters] == [(1, "scoring_error")]
    # The failed lead keeps its new features but no score memory: the next event retries.
    bad = LeadState.from_dict(store.states["bad"])
    assert bad.score is None and bad.counts


# --- cause type, recent activity -----------------------------------------------------------------


def test_score_events_name_the_type_of_their_cause(model: CompiledModel) -> None:
    store = Store()
    (profiled,) = store.run(
        [record(event("a", 1, "lead.profile_updated"), topic=PROFILE)], scorer_for(model)
    ).scores
    (viewed,) = store.run([record(event("b", 1, "lead.page_viewed"))], scorer_for(model)).scores
    assert profiled.cause_event_type == "lead.profile_updated"
    assert viewed.cause_event_type == "lead.page_viewed"
    # Events published before the field existed still decode.
    old = viewed.model_dump(mode="json")
    del old["cause_event_type"]
    assert LeadScored.model_validate_json(orjson.dumps(old)).cause_event_type is None


def test_activity_lists_applied_events_only_oldest_first_by_event_time(
    model: CompiledModel,
) -> None:
    store = Store()
    store.run([record(event("a", 1, days_ago=5))], scorer_for(model))
    long_url = "https://example.com/" + "x" * 300
    records = [
        record(event("a", 3, "lead.page_viewed", days_ago=1, url=long_url), offset=1),
        record(event("a", 2, "lead.profile_updated", days_ago=2), topic=PROFILE, offset=2),
        record(event("a", 1, days_ago=5), offset=3),  # a repeat
        record(b"{not json", offset=4, key=b"a"),  # a dead letter
        record(event("a", 4, "lead.converted", days_ago=0.5), topic=OUTCOME, offset=5),
    ]
    result = store.run(records, scorer_for(model))

    assert [e.id for _, e in result.activity] == ["a.3", "a.2", "a.4"]  # consumption order
    entries = [orjson.loads(raw) for raw in recent_activity(result.activity, keep=50)["a"]]
    assert [e["id"] for e in entries] == [
        "a.2",
        "a.3",
        "a.4",
    ]  # oldest first: LPUSH puts a.4 on top
    profile, view, outcome = entries
    assert profile == {
        "id": "a.2",
        "type": "lead.profile_updated",
        "time": (NOW - timedelta(days=2)).isoformat().replace("+00:00", "Z"),
        "data": {"company_size": 250, "industry": "software", "title_level": "vp"},
    }
    assert view["data"] == {"duration_s": 40.0}  # the 300-character URL is left out
    assert outcome["type"] == "lead.converted" and outcome["data"] == {}
    assert [orjson.loads(raw)["id"] for raw in recent_activity(result.activity, keep=1)["a"]] == [
        "a.4"
    ]
    assert recent_activity(result.activity, keep=0) == {}


def test_a_re_emitted_score_is_marked_as_such(model: CompiledModel) -> None:
    store = Store()
    (original,) = store.run(
        [record(event("a", 1, "lead.demo_requested"))], scorer_for(model)
    ).scores
    again = store.run([record(event("a", 1, "lead.demo_requested"), offset=1)], scorer_for(model))
    assert [s.id for s in again.scores] == [original.id] and again.republished == {original.id}
    assert again.activity == []


def test_every_record_read_is_counted_exactly_once(model: CompiledModel) -> None:
    """events = applied + duplicates + rerouted + dead letters (docs/events.md, the counters)."""
    store = Store()
    records = [
        record(event("a", 1, days_ago=2), offset=0),
        record(event("a", 2, "lead.demo_requested"), offset=1),
        record(event("a", 1, days_ago=2), offset=2),  # a repeat
        record(b"{not json", offset=3),  # dead letter
        record(event("b", 1), offset=4, key=None),  # no key: re-routed
        record(event("a", 3, "lead.converted"), topic=OUTCOME, offset=5),  # a label: applied
        record(event("c", 1, "lead.profile_updated"), topic=PROFILE, offset=6),
    ]
    result = store.run(records, scorer_for(model))
    assert (result.applied, result.duplicates, len(result.reroutes), len(result.dead_letters)) == (
        4, 1, 1, 1,
    )  # fmt: skip
    assert len(records) == (
        result.applied + result.duplicates + len(result.reroutes) + len(result.dead_letters)
    )
