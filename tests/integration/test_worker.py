"""The worker process end to end, on the real broker and Redis: scores, repeats, bad input, SIGKILL.

Each test starts ``python -m leadscore worker`` as a child process configured only
through environment variables, with its own topics, consumer group, table and Redis
keys (``worker_harness.worker_settings``), scoring with a small model trained once per
session. "Done" means the worker's group has committed every input record (Faust
commits only after a batch's Redis write returned and its sends were flushed), so what
the tests read afterwards is final; after a SIGKILL it means the table holds every
event, and commits are checked on their own.

Found here and fixed since: an outcome event moved the time features are valued at, a
re-emitted score mixed the stored score with a recomputed probability
(``test_an_outcome_does_not_change_the_published_score``), and after a crash a score id
could come back with another score. Found here and open, see
``test_sigkill_mid_stream_then_restart_ends_like_an_uninterrupted_run``: a worker
restarted on a backlog can drop input records for good, and its committed offsets can
stall.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
from model_cache import ModelCache
from worker_harness import (
    WorkerProcess,
    by_lead,
    commit_lag,
    create_topics,
    read_to_end,
    running_worker,
    send_records,
    table_states,
    wait_all_committed,
    wait_until,
    without,
    worker_settings,
)

from leadscore.infra.kafka.publish import publish, topic_router
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.dead_letters import DeadLetterKeys
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.scorer import load_scorer
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_vector
from leadscore.models.monitoring.trends import aggregate as aggregate_trends
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.events import OUTCOME_TYPES, lead_event_adapter
from leadscore.schemas.learning import TrainingExample
from leadscore.schemas.scores import DeadLetter, LeadScored
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

Event = dict[str, Any]

# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache
) -> tuple[Path, str]:
    """A small model, trained once (~10 s; shared, see model_cache.py): (registry directory, version)."""
    model_dir = tmp_path_factory.mktemp("models")
    version = model_cache.registry(
        model_dir, leads=800, folds=2, search="none", compare=("ensemble",), seed=0
    )
    return model_dir, version


@pytest.fixture(scope="session")
def reference_scorer(trained_model: tuple[Path, str]) -> Scorer:
    """The same model in this process, to score leads offline."""
    return load_scorer(
        Settings(model_dir=trained_model[0], score_change_threshold=0, min_training_labels=0)
    )


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, redis_url: str, name_prefix: str, trained_model: tuple[Path, str]
) -> Callable[..., Settings]:
    """``make_settings(run="", **overrides)``: the settings of one worker run of this test."""

    def make(run: str = "", **overrides: Any) -> Settings:
        return worker_settings(
            f"{name_prefix}{run}",
            kafka_bootstrap=kafka_bootstrap,
            redis_url=redis_url,
            model_dir=trained_model[0],
            **overrides,
        )

    return make


#: Simulated event times start here: the same events on every run, all in the past.
_SIM_START = datetime(2025, 1, 1, tzinfo=UTC)


def simulated(n_leads: int, span_days: float, seed: int) -> list[Event]:
    """Simulated events in event-time order, the same on every run."""
    config = SimConfig(n_leads=n_leads, span_days=span_days, seed=seed, start=_SIM_START)
    return list(Simulator(config).events())


def group_by_lead(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(event["subject"], []).append(event)
    return out


def offline_probability(events: list[Event], scorer: Scorer) -> float:
    """A lead's probability computed here from ``events``, applied in order."""
    state = LeadState(events[0]["subject"])
    for event in events:
        apply_event(state, lead_event_adapter.validate_python(event))
    return float(scorer.probabilities(to_vector(state)[None, :])[0])


def last_ids(events: list[Event]) -> set[str]:
    """Ids of the last activity and the last profile event of one lead.

    Offsets order each input topic, not one topic against another; with
    LEADSCORE_SCORE_CHANGE_THRESHOLD=0 a lead's last score is caused by whichever of
    these two the worker saw last.
    """
    last: dict[bool, str] = {}
    for event in events:
        if event["type"] not in OUTCOME_TYPES:
            last[event["type"] == "lead.profile_updated"] = event["id"]
    return set(last.values())


def missing_events(ids_of: dict[str, set[str]], states: dict[str, dict[str, Any]]) -> set[str]:
    """Ids of events that are in no lead's state."""
    return {
        event_id
        for lead, ids in ids_of.items()
        for event_id in ids - set(states.get(lead, {}).get("seen_ids", ()))
    }


async def where_published(
    settings: Settings, event_ids: set[str]
) -> list[tuple[str, int, int, int]]:
    """Where events sit on the input topics: (topic:partition, first offset, last offset, count)."""
    records = await read_to_end(
        settings.kafka_bootstrap, settings.input_topics, settings.topic_partitions
    )
    offsets: dict[str, list[int]] = {}
    for record in records:
        if record.value and orjson.loads(record.value).get("id") in event_ids:
            where = f"{record.topic.rsplit('.', 2)[-2]}:{record.partition}"
            offsets.setdefault(where, []).append(record.offset)
    return [(tp, min(o), max(o), len(o)) for tp, o in sorted(offsets.items())]


async def scores_of(settings: Settings) -> list[Any]:
    """Every record on the scores topic, in (partition, offset) order."""
    return await read_to_end(
        settings.kafka_bootstrap, [settings.scores_topic], settings.topic_partitions
    )


# --- 1. end to end ------------------------------------------------------------------------------


async def test_every_lead_is_scored_and_redis_matches_the_topic(
    make_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    trained_model: tuple[Path, str],
    reference_scorer: Scorer,
    tmp_path: Path,
) -> None:
    settings = make_settings()
    events = simulated(n_leads=30, span_days=12, seed=2)
    leads = group_by_lead(events)
    await create_topics(settings)
    store = ScoreStore(redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings))

    async with running_worker(settings, tmp_path / "worker.log") as worker:
        stats = await publish(events, settings)
        assert stats.sent == len(events)
        await wait_all_committed(settings, workers=[worker])
        counters = await store.stats()
        score_records = await scores_of(settings)
        states, state_partitions = await table_states(settings)
    assert "Crashed" not in worker.log_text(), worker.log_tail()

    published = {event["id"]: event for event in events}
    scored = by_lead(score_records)
    active = {
        lead for lead, evs in leads.items() if any(e["type"] not in OUTCOME_TYPES for e in evs)
    }
    assert set(scored) == active, "leads with activity vs leads with a score event"
    for record in score_records:
        score = LeadScored.model_validate_json(record.value)
        assert record.key == score.lead_id.encode()
        assert score.model_version == trained_model[1]
        assert score.reasons, score
        cause = published.get(score.cause_event_id)
        assert cause is not None and cause["subject"] == score.lead_id, score
        assert re.fullmatch(r"sc_[0-9a-f]{24}", score.id), score.id
        assert score.score == to_score(score.probability), score
        assert score.grade == reference_scorer.policy.grade(score.score), score
    assert len({orjson.loads(r.value)["id"] for r in score_records}) == len(score_records)

    board = dict(await store.top(n=1000))
    assert set(board) == active
    for lead, lead_scores in scored.items():
        last = lead_scores[-1]
        assert await store.latest(lead) == last, f"Redis latest of {lead} is not its last score"
        assert board[lead] == pytest.approx(last["probability"] * 100)
        assert last["cause_event_id"] in last_ids(leads[lead]), lead
        # The last score is the score of everything the lead did, however it was batched.
        expected = offline_probability(leads[lead], reference_scorer)
        assert last["probability"] == pytest.approx(expected, abs=1e-6), lead
        # The table agrees, and each lead's state is kept in one changelog partition.
        assert (states[lead]["score"], states[lead]["grade"]) == (last["score"], last["grade"])
        assert len(state_partitions[lead]) == 1, (lead, state_partitions[lead])
    for lead, evs in leads.items():
        assert sorted(states[lead]["seen_ids"]) == sorted(e["id"] for e in evs), lead

    assert counters.get("events") == len(events), counters
    assert counters.get("applied") == len(events), counters
    assert counters.get("scores") == len(score_records), counters
    assert counters.get("duplicates", 0) == 0 and counters.get("dead_letters", 0) == 0, counters
    assert counters.get("rerouted", 0) == 0, counters


async def test_the_worker_keeps_each_leads_activity_and_the_trend_buckets(
    make_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    reference_scorer: Scorer,
    tmp_path: Path,
) -> None:
    """Activity lists hold every applied event once (repeats not again); the trend buckets
    add up to the score events on the topic and the training examples, by event time."""
    settings = make_settings(activity_length=1000, trends_bucket_s=3600)
    events = simulated(n_leads=30, span_days=10, seed=5)
    leads = group_by_lead(events)
    await create_topics(settings)
    store = ScoreStore(redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings))
    expected_ids = {lead: sorted(e["id"] for e in evs) for lead, evs in leads.items()}

    async def activity() -> dict[str, list[dict[str, Any]]]:
        return {lead: await store.activity(lead, 1000) for lead in leads}

    async with running_worker(settings, tmp_path / "worker.log") as worker:
        await publish(events, settings)
        await publish(events[:20], settings)  # repeats
        await wait_all_committed(settings, workers=[worker])
        # A held outcome (its lead's activity not read up to its time yet) is listed once
        # it is released and applied.
        listed = await wait_until(
            "every applied event in the activity lists",
            activity,
            lambda got: (
                {lead: sorted(e["id"] for e in rows) for lead, rows in got.items()} == expected_ids
            ),
            workers=[worker],
            describe=lambda got: repr({lead: len(rows) for lead, rows in got.items()}),
        )
        await wait_all_committed(settings, workers=[worker])
        score_records = await scores_of(settings)
        example_records = await read_to_end(
            settings.kafka_bootstrap, [settings.training_topic], settings.topic_partitions
        )
        stored = await store.trend_buckets(0, 2**40)
        ttls = [await redis_client.ttl(store.trends_key(start)) for start in stored]
    assert "Crashed" not in worker.log_text(), worker.log_tail()

    published = {event["id"]: event for event in events}
    for rows in listed.values():
        for row in rows:
            source = published[row["id"]]
            assert row["type"] == source["type"] and set(row) == {"id", "type", "time", "data"}
            assert datetime.fromisoformat(row["time"]) == datetime.fromisoformat(source["time"])
            assert row["time"].endswith("Z")

    # Each score event once (a repeat of its cause re-publishes the same id).
    scores = list(
        {s.id: s for s in (LeadScored.model_validate_json(r.value) for r in score_records)}.values()
    )
    for score in scores:
        assert score.cause_event_type == published[score.cause_event_id]["type"], score
    examples = [TrainingExample.model_validate_json(r.value) for r in example_records]
    assert examples, "the simulated leads should have outcomes"
    expected = aggregate_trends(
        scores,
        examples,
        grade_of=lambda p: reference_scorer.policy.grade(to_score(p)),
        bucket_s=3600,
    )
    assert set(stored) == set(expected)
    for start, fields in expected.items():
        assert set(stored[start]) == set(fields), start
        for name, value in fields.items():
            assert stored[start][name] == pytest.approx(value, abs=1e-6), (start, name)
    assert sum(f.get("scores", 0) for f in stored.values()) == len(scores)
    outcomes = sum(v for f in stored.values() for k, v in f.items() if k.endswith(":n"))
    assert outcomes == len(examples)
    assert all(ttl > 300 * 86_400 for ttl in ttls), ttls


# --- 2. repeated event ids ----------------------------------------------------------------------


async def test_repeated_event_ids_change_nothing(
    make_settings: Callable[..., Settings], redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = make_settings()
    events = simulated(n_leads=20, span_days=10, seed=5)
    leads = group_by_lead(events)
    assert max(len(evs) for evs in leads.values()) < settings.dedupe_window
    await create_topics(settings)
    store = ScoreStore(redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings))

    async def snapshot() -> dict[str, Any]:
        return {
            "latest": {lead: await store.latest(lead) for lead in leads},
            "board": await store.top(n=1000),
            "stats": await store.stats(),
            "scores": await scores_of(settings),
            "states": (await table_states(settings))[0],
        }

    async with running_worker(settings, tmp_path / "worker.log") as worker:
        await publish(events, settings)
        await wait_all_committed(settings, workers=[worker])
        before = await snapshot()
        await publish(events, settings)  # the same events again: same ids, new offsets
        await wait_all_committed(settings, workers=[worker])
        after = await snapshot()
    assert "Crashed" not in worker.log_text(), worker.log_tail()

    n = len(events)
    assert before["stats"].get("events") == before["stats"].get("applied") == n, before["stats"]
    stats = after["stats"]
    assert stats.get("events") == 2 * n, stats
    assert stats.get("applied") == n, stats
    assert stats.get("duplicates") == n, stats
    assert stats.get("dead_letters", 0) == 0, stats

    assert after["states"] == before["states"], "a repeated event changed a lead's state"
    assert after["board"] == before["board"]
    for lead in leads:
        old, new = before["latest"][lead], after["latest"][lead]
        assert old is not None and new == old, lead  # a re-emitted score is the same event

    first_ids = {orjson.loads(r.value)["id"] for r in before["scores"]}
    last_of_lead = {lead: evs[-1] for lead, evs in by_lead(before["scores"]).items()}
    old_offsets = {(r.partition, r.offset) for r in before["scores"]}
    reemitted = [
        orjson.loads(r.value) for r in after["scores"] if (r.partition, r.offset) not in old_offsets
    ]
    assert len(reemitted) == stats.get("scores", 0) - before["stats"].get("scores", 0)
    assert len({e["lead_id"] for e in reemitted}) == len(reemitted), "a lead re-emitted twice"
    for event in reemitted:
        assert event["id"] in first_ids, f"a repeat produced a new score event: {event}"
        assert event == last_of_lead[event["lead_id"]], "a re-emitted score differs from the first"


# --- 3. bad input ---------------------------------------------------------------------------------


def _bad_records(
    lead: str, now: datetime, max_bytes: int
) -> list[tuple[str, bytes | None, bytes | None, str, str]]:
    """(topic kind, key, value, reason_code, text the reason must contain), one per defect."""
    good = {
        "specversion": "1.0", "source": "test", "type": "lead.page_viewed",
        "time": (now - timedelta(hours=1)).isoformat(), "subject": lead,
        "data": {"url": "/pricing", "duration_s": 12},
    }  # fmt: skip
    counter = iter(range(1000))

    def ev(**changes: Any) -> bytes:  # ``name=...`` leaves the attribute out
        event = {**good, "id": f"bad-{next(counter)}", **changes}
        return orjson.dumps({k: v for k, v in event.items() if v is not ...})

    key = lead.encode()
    act, prof, out = "activity", "profile", "outcome"
    profile, call, download = "lead.profile_updated", "lead.call_logged", "lead.content_downloaded"
    return [
        (act, key, b"this is not json", "not_json", "not valid JSON"),
        (act, key, b'{"specversion": "1.0", "id": "x"', "not_json", "not valid JSON"),
        (act, key, b'{"id": "\xff\xfe not utf-8"}', "not_json", "not valid JSON"),
        (act, key, b"\xc3\x28\xa0\xa1", "not_json", "not valid JSON"),
        (act, key, b"", "empty", "no value"),
        (act, key, None, "empty", "no value"),  # a tombstone
        (act, key, b"[1, 2, 3]", "not_object", "JSON object"),
        (act, key, b'"a string"', "not_object", "JSON object"),
        (act, key, ev(type="lead.teleported"), "unknown_type", "lead.teleported"),
        (act, key, ev(type=...), "schema", "type: field required"),
        (act, key, ev(subject=...), "schema", "subject"),
        (act, key, ev(subject=""), "schema", "subject"),
        (act, key, ev(subject="lead\u0001x"), "schema", "subject"),
        (act, key, ev(id=...), "schema", "id"),
        (act, key, ev(id="x" * 201), "schema", "id"),
        (act, key, ev(specversion="0.3"), "schema", "specversion"),
        (act, key, ev(time="2026-01-01T10:00:00"), "schema", "time"),  # no time zone
        (act, key, ev(time="yesterday"), "schema", "time"),
        (act, key, ev(data={"url": "/x", "duration_s": -5}), "schema", "data.duration_s"),
        (act, key, ev(data={"url": "/x", "duration_s": "long"}), "schema", "data.duration_s"),
        (act, key, ev(data="not an object"), "schema", "data"),
        (act, key, ev(data={"duration_s": 3}), "schema", "data.url"),
        (act, key, ev(type=call, data={"duration_s": 30}), "schema", "data.answered"),
        (act, key, ev(type=download, data={"asset": "a", "kind": "tv"}), "schema", "data.kind"),
        (prof, key, ev(type=profile, data={"country": "USA"}), "schema", "data.country"),
        (prof, key, ev(type=profile, data={"company_size": 0}), "schema", "data.company_size"),
        (act, key, ev(type=profile, data={"company_size": 50}), "wrong_topic", "profile"),
        (prof, key, ev(), "wrong_topic", "activity"),
        (act, key, ev(type="lead.converted", data={}), "wrong_topic", "outcome"),
        (out, key, ev(), "wrong_topic", "activity"),
        (act, key, ev(time=(now + timedelta(days=1)).isoformat()), "future_time", "ahead"),
        (act, key, ev(data={"url": "/" + "u" * max_bytes}), "too_large", str(max_bytes)),
        (act, None, b"{broken", "not_json", "not valid JSON"),  # and no key
        (act, b"\xff\xfe", b"[]", "not_object", "JSON object"),  # a key that is not UTF-8
    ]


async def test_malformed_records_go_to_the_dead_letter_topic_and_the_rest_is_scored(
    make_settings: Callable[..., Settings], redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    max_bytes = 2048
    settings = make_settings(max_event_bytes=max_bytes)
    topic_of = {"activity": settings.activity_topic, "profile": settings.profile_topic,
                "outcome": settings.outcome_topic}  # fmt: skip
    route = topic_router(settings)
    now = datetime.now(UTC)
    valid = simulated(n_leads=12, span_days=10, seed=3)
    leads = group_by_lead(valid)
    bad = _bad_records(valid[0]["subject"], now, max_bytes)
    assert len(bad) >= 30

    # Valid events whose Kafka key is not their lead id: republished keyed by their subject,
    # then scored. Each is its lead's only event, so its score has it as the cause.
    def lone_event(lead: str) -> Event:
        return {
            "specversion": "1.0", "id": f"{lead}-1", "source": "test", "type": "lead.page_viewed",
            "time": (now - timedelta(minutes=5)).isoformat(), "subject": lead,
            "data": {"url": "/pricing", "duration_s": 40},
        }  # fmt: skip

    rerouted = {
        "lead-with-null-key": (None, lone_event("lead-with-null-key")),
        "lead-with-wrong-key": (b"someone-else", lone_event("lead-with-wrong-key")),
    }

    # A bad record after every few valid ones; the re-routed ones in the middle.
    records: list[tuple[str, bytes | None, bytes | None]] = []
    expected: dict[int, tuple[str, str]] = {}  # index in records -> (code, reason text)
    step = max(1, len(valid) // len(bad))
    bad_left = iter(bad)
    for i, event in enumerate(valid):
        records.append((route(event["type"]), event["subject"].encode(), orjson.dumps(event)))
        if i % step == 0 and (item := next(bad_left, None)) is not None:
            kind, key, value, code, text = item
            expected[len(records)] = (code, text)
            records.append((topic_of[kind], key, value))
        if i == len(valid) // 2:
            for key, event in rerouted.values():
                records.append((settings.activity_topic, key, orjson.dumps(event)))
    for kind, key, value, code, text in bad_left:
        expected[len(records)] = (code, text)
        records.append((topic_of[kind], key, value))
    assert len(expected) == len(bad)

    await create_topics(settings)
    store = ScoreStore(redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings))
    async with running_worker(settings, tmp_path / "worker.log") as worker:
        sent = await send_records(settings.kafka_bootstrap, records)
        await wait_all_committed(settings, workers=[worker])
        counters = await store.stats()
        letters = await read_to_end(
            settings.kafka_bootstrap, [settings.dead_letter_topic], settings.topic_partitions
        )
        inputs = await read_to_end(
            settings.kafka_bootstrap, settings.input_topics, settings.topic_partitions
        )
        score_records = await scores_of(settings)
    assert "Crashed" not in worker.log_text(), worker.log_tail()

    # Every malformed record: exactly one dead letter, naming the problem and the original.
    where = {(m.topic, m.partition, m.offset): i for i, m in enumerate(sent)}
    seen: dict[int, DeadLetter] = {}
    # Sealed with keys per day and lead in Redis (docs/privacy.md): open them as
    # `leadscore dead-letters` does.
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = DeadLetterKeys(
            client, settings.redis_prefix, 60.0, keyring=Keyring.from_settings(settings)
        )
        opened = await keys.open([DeadLetter.model_validate_json(r.value) for r in letters])
    finally:
        await client.aclose()
    refs = LeadRefs.from_settings(settings)
    for record, letter in zip(letters, opened, strict=True):
        assert letter is not None, "a dead letter that cannot be opened while its key lives"
        index = where.get((letter.topic, letter.partition, letter.offset))
        assert index in expected, f"a dead letter for a record that was not malformed: {letter}"
        assert index not in seen, f"two dead letters for record {index}: {seen[index]}, {letter}"
        seen[index] = letter
        code, text = expected[index]
        _, key, value = records[index]
        assert letter.reason_code == code, (letter, records[index])
        assert text.lower() in letter.reason.lower(), (letter.reason, text)
        assert record.key == (refs.table(key.decode(errors="replace")).encode() if key else None)
        assert letter.key_b64 == (base64.b64encode(key).decode() if key is not None else None)
        if value is None:
            assert letter.value_b64 is None
        else:
            assert letter.value_b64 is not None and base64.b64decode(letter.value_b64) == value
    missing = {i: records[i] for i in expected if i not in seen}
    assert not missing, f"malformed records without a dead letter: {missing}"

    # Re-routed: one copy keyed by the lead id on the input topic, and scored.
    scored = by_lead(score_records)
    for lead, (_, event) in rerouted.items():
        copies = [r for r in inputs if r.key == lead.encode() and r.value == orjson.dumps(event)]
        assert len(copies) == 1, (lead, copies)
        assert [s["cause_event_id"] for s in scored.get(lead, [])] == [event["id"]], lead
        latest = await store.latest(lead)
        assert latest is not None and latest["cause_event_id"] == event["id"], latest

    # Every valid event applied, every lead scored up to its last event.
    for lead, evs in leads.items():
        assert scored.get(lead), lead
        assert scored[lead][-1]["cause_event_id"] in last_ids(evs), lead
        assert await store.latest(lead) == scored[lead][-1], lead
    assert counters.get("events") == len(records) + len(rerouted), counters  # + the copies
    assert counters.get("applied") == len(valid) + len(rerouted), counters
    assert counters.get("dead_letters") == len(bad), counters
    assert counters.get("rerouted") == len(rerouted), counters
    assert counters.get("duplicates", 0) == 0, counters


# --- 4. SIGKILL and restart -----------------------------------------------------------------------

#: Events per second into the crash run: slow enough that the kill lands mid-stream.
_CRASH_RUN_RATE = 150.0
_KILL_AT_FRACTION = 0.35
#: LeadState fields that depend on batch boundaries and on how the three input topics
#: interleave, not on which events were applied: compared apart, or not at all.
_BATCHING_DEPENDENT = ("seen_ids", "score_cause_id", "prev_score", "prev_grade", "last_score_event")
#: How long the restarted worker gets to commit everything once it has processed everything.
_COMMIT_GRACE_S = 20.0


async def test_sigkill_mid_stream_then_restart_ends_like_an_uninterrupted_run(
    make_settings: Callable[..., Settings],
    redis_client: aioredis.Redis,
    reference_scorer: Scorer,
    tmp_path: Path,
) -> None:
    """The same events into an uninterrupted run and into a run SIGKILLed mid-stream.

    After the restart the crash run must end with the same table (every event applied
    exactly once) and the same latest score per lead as the reference run.

    Guards two Faust bugs that leadscore patches (``leadscore.streams.tansu_compat``):
    records fetched while recovery resumed the partitions were dropped unprocessed
    (``install_resume_order_fix``), and the phantom gap ``perform_seek()`` leaves behind
    made the committed offset advance one offset per commit (``install_acked_offsets_fix``):
    after processing everything, the restarted worker must commit every input offset
    within ``_COMMIT_GRACE_S``.
    """
    reference, crashed = make_settings("ref."), make_settings("crash.")
    events = simulated(n_leads=50, span_days=30, seed=1)
    leads = group_by_lead(events)
    ids_of = {lead: {e["id"] for e in evs} for lead, evs in leads.items()}
    assert max(len(evs) for evs in leads.values()) < reference.dedupe_window
    n = len(events)
    await asyncio.gather(create_topics(reference), create_topics(crashed))
    ref_store = ScoreStore(
        redis_client, reference.redis_prefix, keyring=Keyring.from_settings(reference)
    )
    crash_store = ScoreStore(
        redis_client, crashed.redis_prefix, keyring=Keyring.from_settings(crashed)
    )

    ref_worker = WorkerProcess(reference, tmp_path / "reference.log")
    first = WorkerProcess(crashed, tmp_path / "crash-first.log")
    workers = [ref_worker, first]
    try:
        await asyncio.gather(ref_worker.wait_ready(), first.wait_ready())
        ref_publish = asyncio.ensure_future(publish(events, reference))
        crash_publish = asyncio.ensure_future(publish(events, crashed, _CRASH_RUN_RATE))
        at_kill = await wait_until(
            "progress of the crash run",
            crash_store.stats,
            lambda s: s.get("events", 0) >= _KILL_AT_FRACTION * n,
            workers=[first],
            poll_s=0.05,
        )
        first.kill()
        assert not crash_publish.done() and at_kill["events"] < n, "the kill was not mid-stream"
        lag_at_kill = await commit_lag(crashed)

        second = WorkerProcess(crashed, tmp_path / "crash-second.log")
        workers.append(second)
        ready_s = await second.wait_ready()
        await asyncio.wait_for(asyncio.gather(ref_publish, crash_publish), timeout=90)
        await wait_all_committed(reference, workers=[ref_worker])
        # The crash run is done when its table holds every event of every lead (commits are
        # checked on their own below), and Redis and the scores topic show the table's score.
        try:
            crash_states, crash_partitions = await wait_until(
                "every event in the crash run's table",
                lambda: table_states(crashed),
                lambda found: not missing_events(ids_of, found[0]),
                workers=[second],
                timeout_s=60.0,  # ~10 s normally
                poll_s=1.0,
                describe=lambda found: f"{len(missing_events(ids_of, found[0]))} events missing",
            )
        except pytest.fail.Exception as exc:
            second.check_alive()
            states, _ = await table_states(crashed)
            where = await where_published(crashed, missing_events(ids_of, states))
            pytest.fail(
                f"{exc}\nLOST after SIGKILL + restart: events never applied by the restarted "
                f"worker, as (topic:partition, first offset, last offset, count): {where}; "
                f"uncommitted input at the kill (partition: end, committed): {lag_at_kill}; "
                f"now: {await commit_lag(crashed)}; Redis counters {await crash_store.stats()}",
                pytrace=False,
            )

        async def latest_and_scores() -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
            latest = {lead: await crash_store.latest(lead) for lead in leads}
            return latest, by_lead(await scores_of(crashed))

        def reflects_table(found: tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]) -> bool:
            latest, scores = found
            return all(
                latest[lead] is not None
                and latest[lead]["cause_event_id"] == crash_states[lead]["score_cause_id"]
                and scores.get(lead, [None])[-1] == latest[lead]
                for lead in leads
            )

        crash_latest, _ = await wait_until(
            "the crash run's final scores in Redis and on the scores topic",
            latest_and_scores,
            reflects_table,
            workers=[second],
            timeout_s=30.0,
            poll_s=0.5,
        )
        lag_before = await commit_lag(crashed)
        try:
            await wait_all_committed(crashed, timeout_s=_COMMIT_GRACE_S, workers=[second])
            stalled = ""
        except pytest.fail.Exception:
            second.check_alive()  # a dead worker is a failure, not a slow commit
            lag_after = await commit_lag(crashed)
            stalled = (
                f"commit stall: the restarted worker had processed everything but its "
                f"committed offsets (partition: end, committed) went from {lag_before} to "
                f"{lag_after} in {_COMMIT_GRACE_S:.0f} s"
            )
        ref_states, _ = await table_states(reference)
        ref_scores = by_lead(await scores_of(reference))
        crash_score_records = await scores_of(crashed)
        ref_latest = {lead: await ref_store.latest(lead) for lead in leads}
        crash_counters = await crash_store.stats()
    finally:
        for worker in workers:
            worker.stop()
    for worker in (ref_worker, second):
        assert "Crashed" not in worker.log_text(), worker.describe()
    print(
        f"\nSIGKILL after {at_kill['events']} of {n} events; restarted worker ready in "
        f"{ready_s:.1f} s; it consumed {crash_counters.get('events', 0) - at_kill['events']} "
        f"({crash_counters.get('duplicates', 0)} repeats dropped)"
    )

    # The same table: every event applied exactly once, nothing lost, nothing doubled.
    assert set(crash_states) == set(ref_states) == set(leads)
    differing = {}
    for lead in leads:
        ref, got = ref_states[lead], crash_states[lead]
        if without(got, *_BATCHING_DEPENDENT) != without(ref, *_BATCHING_DEPENDENT) or sorted(
            got["seen_ids"]
        ) != sorted(ref["seen_ids"]):
            differing[lead] = {
                k: (ref[k], got[k])
                for k in ref
                if k not in _BATCHING_DEPENDENT and ref[k] != got[k]
            } | {
                "ids missing": sorted(set(ref["seen_ids"]) - set(got["seen_ids"])),
                "ids extra": sorted(set(got["seen_ids"]) - set(ref["seen_ids"])),
            }
            continue
        np.testing.assert_array_equal(
            to_vector(LeadState.from_dict(got)), to_vector(LeadState.from_dict(ref)), err_msg=lead
        )
        assert len(crash_partitions[lead]) == 1, (lead, crash_partitions[lead])
    assert not differing, f"{len(differing)} leads differ (reference, crash run): {differing}"

    # The same latest score in Redis: the score of all the lead's events. (The causing event
    # may differ: the input topics interleave differently in the two runs.)
    same = ("score", "grade", "probability", "model_version", "lead_id")
    for lead, evs in leads.items():
        ref, got = ref_latest[lead], crash_latest[lead]
        assert ref is not None and ref == ref_scores[lead][-1], lead
        state = crash_states[lead]
        assert (got["score"], got["grade"]) == (state["score"], state["grade"]), lead
        assert {k: got[k] for k in same} == {k: ref[k] for k in same}, lead
        expected = offline_probability(evs, reference_scorer)
        assert got["probability"] == pytest.approx(expected, abs=1e-6), lead
    assert crash_counters.get("events", 0) >= n, crash_counters
    assert crash_counters.get("dead_letters", 0) == 0, crash_counters

    # Score events may repeat after a crash (at least once) and consumers drop repeats by
    # id, so a repeated id must be the same score.
    by_id: dict[str, dict[str, Any]] = {}
    for record in crash_score_records:
        event = orjson.loads(record.value)
        earlier = by_id.setdefault(event["id"], event)
        assert without(event, "scored_at") == without(earlier, "scored_at"), (earlier, event)

    # Checked last, so a lost or doubled event above is reported first.
    assert not stalled, stalled


# --- regression -------------------------------------------------------------------------------


async def test_an_outcome_does_not_change_the_published_score(
    make_settings: Callable[..., Settings], redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """Two leads with the same history, the outcome consumed first for one and last for the other.

    Both must end with the same score, and replaying the last score's cause must re-emit
    exactly that score event. Regression: an outcome moved ``LeadState.last_event_t``, the
    time features are valued at, without a rescore (fixed in 27f0b4a); a re-emission
    carried the stored score with a probability and reasons recomputed from the changed
    state (fixed in 8566a56).
    """
    settings = make_settings()

    # A simulated lead whose outcome came days after its last activity (so, when the outcome
    # moved the valuation time, it moved the score).
    def late_outcome(evs: list[Event]) -> bool:
        gap = datetime.fromisoformat(evs[-1]["time"]) - datetime.fromisoformat(evs[-2]["time"])
        return evs[-1]["type"] in OUTCOME_TYPES and gap > timedelta(days=3)

    leads = group_by_lead(simulated(n_leads=50, span_days=30, seed=1))
    source = next((evs for evs in leads.values() if late_outcome(evs)), None)
    assert source is not None, "no simulated lead with a late outcome"

    def copy_for(lead: str) -> list[Event]:
        return [{**e, "subject": lead, "id": f"{lead}.{i}"} for i, e in enumerate(source)]

    early, late = copy_for("outcome-first"), copy_for("outcome-last")
    await create_topics(settings)
    store = ScoreStore(redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings))
    async with running_worker(settings, tmp_path / "worker.log") as worker:

        async def send(batch: list[Event]) -> None:
            await publish(batch, settings)
            await wait_all_committed(settings, workers=[worker])

        await send([early[-1]])  # the outcome before anything else
        await send(early[:-1] + late[:-1])
        scored = await store.latest("outcome-last")
        await send([late[-1]])  # the outcome after the last score
        await send([e for e in late if e["id"] == scored["cause_event_id"]])  # re-emits it
        first, last = await store.latest("outcome-first"), await store.latest("outcome-last")
        score_records = await scores_of(settings)
    assert "Crashed" not in worker.log_text(), worker.log_tail()

    scored_as = ("score", "grade", "probability", "base_score", "reasons")
    assert first is not None and last is not None and scored is not None
    assert {k: first[k] for k in scored_as} == {k: last[k] for k in scored_as}, (
        "same events, a different last score depending on when the outcome was consumed"
    )
    assert last == scored, "the re-emitted score differs from the original"
    copies = [r.value for r in score_records if orjson.loads(r.value)["id"] == scored["id"]]
    assert len(copies) == 2 and copies[0] == copies[1], copies
