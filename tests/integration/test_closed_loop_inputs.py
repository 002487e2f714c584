"""The closed loop's inputs on the real broker and Redis: training examples, scored vectors, drift windows.

1. A worker (``python -m leadscore worker``) scores simulated runs with outcomes. Its
   ``leads.training.v1`` holds one example per lead with an outcome whose vector holds
   only events from before the outcome (exactly all of them when they were consumed
   before it), and its ``leads.features.v1`` holds the vectors it scored.
2. The drift agent, run in this process against the broker and Redis, reads feature
   samples of a simulated run with a shift at a known time (computed offline with
   :func:`leadscore.models.batch.replay.replay`: the worker's batch logic, minus Kafka) and
   alerts within a bounded number of windows after the shift, never before; on a calm
   run of the same length and seed it never alerts. A restarted agent resumes from the
   state it saved in Redis (no second baseline).

The features topic of part 2 has one partition, so the agent reads the samples in
publish (event-time) order, as a live agent that keeps up would; its windows are then
exactly those of the same monitor run offline (``closed_loop_harness.offline_windows``),
which the test checks window by window.

Found here:

- Training examples from a backlog missed earlier events (fixed). The worker does not
  order one input topic against another, so when a time-ordered run is published in one
  burst the (small) outcome topic is consumed ahead of the activity topic: in the
  "ordered" run of part 1, 56 and then 71 of 71 examples (two runs) missed events
  published before their outcome, most of them every event (an empty vector with its
  label). The worker now holds such outcomes (``leadscore.models.batch.outcome_clock``): 0 of
  71 miss any, and the test asserts none does.
- An outcome applied before the activity behind it in the same micro-batch (fixed): the
  gate judges an outcome with the whole batch's progress, and the batch interleaves the
  topics, so 1 of 71 examples (in a CI run on a loaded box) missed its lead's last
  activity. Within a batch an outcome now waits for its lead's events up to its time.
- Weekend false alarms with windows shorter than the weekly cycle. The simulator's
  weekend traffic is 0.3x the weekday's. With windows of 400 leads (~0.8 simulated
  days) weekend windows differ from the weekday windows around them and, when a
  weekend fills two windows, persist: calm runs alert in 0, 0, 4, 11, 0 of ~87 windows
  for seeds 0-4, and a longer baseline (6, 9, 12 windows, up to 9.5 days) does not
  remove it. With the default 1000 leads (~3 days here) calm runs alert in none of ~20
  windows for any of the five seeds, so part 2 uses 1000; in traffic where 1000 leads
  come in less than a day the weekend alarms would be back. Measure with (~2-4 min):
  ``.venv/bin/python tests/integration/closed_loop_harness.py --seeds 0 1 2 3 4 --window 1000``
  (and ``--window 400 --baseline-windows 3 9``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from closed_loop_harness import (
    SIM_START,
    DriftRun,
    OfflineWindow,
    Sample,
    feature_samples,
    offline_windows,
    rules_scorer,
)
from worker_harness import (
    committed_offsets,
    create_topics,
    end_offsets,
    read_to_end,
    running_worker,
    wait_all_committed,
    wait_until,
    worker_settings,
)

from leadscore.infra.closed_loop_store import ClosedLoopKeys
from leadscore.infra.kafka.publish import publish
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.scorer import load_scorer
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, FEATURE_SPEC_VERSION, to_vector
from leadscore.schemas.events import OUTCOME_TYPES, lead_event_adapter
from leadscore.schemas.learning import DriftEvent, FeatureSample, TrainingExample
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator
from leadscore.streams.drift import DriftAgent, drift_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Event = dict[str, Any]


def closed_loop_settings(
    prefix: str, kafka_bootstrap: str, redis_url: str, model_dir: Path, **overrides: Any
) -> Settings:
    """A worker's settings with this test's own closed-loop topics too (the defaults are shared)."""
    return worker_settings(
        prefix,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=model_dir,
        features_topic=f"{prefix}leads.features.v1",
        training_topic=f"{prefix}leads.training.v1",
        drift_topic=f"{prefix}models.drift.v1",
        retrain_enabled=False,
        **overrides,
    )


# --- 1. the worker's examples and samples ------------------------------------------------------


def events_before_outcome(events: list[Event]) -> tuple[list[Event], Event | None]:
    """A lead's events published before its first outcome, and that outcome."""
    for i, event in enumerate(events):
        if event["type"] in OUTCOME_TYPES:
            return events[:i], event
    return events, None


def vector_of(lead_id: str, events: list[Event]) -> np.ndarray:
    """The vector of a lead that saw exactly ``events`` (none: a lead known only by its outcome)."""
    state = LeadState(lead_id)
    for event in events:
        apply_event(state, lead_event_adapter.validate_python(event))
    return to_vector(state)


def event_time(event: Event) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


def group_by_lead(events: list[Event]) -> dict[str, list[Event]]:
    leads: dict[str, list[Event]] = {}
    for event in events:
        leads.setdefault(event["subject"], []).append(event)
    return leads


def after_outcome(outcome: Event, n: int, type_: str = "lead.page_viewed") -> Event:
    """An event of the outcome's lead, one hour after the outcome."""
    data = (
        {"url": "https://example.com/pricing", "duration_s": 30}
        if type_ == "lead.page_viewed"
        else {}
    )
    time = event_time(outcome) + timedelta(hours=1)
    return {
        "specversion": "1.0", "id": f"{outcome['subject']}.after-{n}", "source": "test", "type": type_,
        "subject": outcome["subject"], "time": time.isoformat(), "data": data,
    }  # fmt: skip


def unique_examples(records: list[Any]) -> dict[str, TrainingExample]:
    """Examples by lead: repeats of one example (same id, after a crash) count once; two ids fail."""
    by_id: dict[str, TrainingExample] = {}
    for record in records:
        example = TrainingExample.model_validate_json(record.value)
        assert record.key == example.lead_id.encode()
        by_id.setdefault(example.id, example)
    by_lead: dict[str, TrainingExample] = {}
    for example in by_id.values():
        assert example.lead_id not in by_lead, f"two examples for {example.lead_id}"
        by_lead[example.lead_id] = example
    return by_lead


def check_example(example: TrainingExample, outcome: Event, version: str) -> None:
    """Label, times, model; the vector is checked by the caller."""
    outcome_type = outcome["type"].removeprefix("lead.")
    assert (example.outcome, example.label) == (outcome_type, int(outcome_type == "converted")), (
        example
    )
    assert example.outcome_event_id == outcome["id"]
    assert example.outcome_time == event_time(outcome)
    assert example.feature_time is None or example.feature_time <= example.outcome_time, example
    assert example.feature_spec_version == FEATURE_SPEC_VERSION
    assert example.model_version == version


def applied_prefixes(
    lead: str, before: list[Event], features: list[float]
) -> tuple[int, int] | None:
    """(profile events, activity events) of ``before`` the vector holds, if it is such prefixes.

    The worker reads each input topic in order, but not one topic against another: what a
    lead's state holds when its outcome is applied is a prefix of its profile events and
    a prefix of its activity events.
    """
    profiles = [e for e in before if e["type"] == "lead.profile_updated"]
    activities = [e for e in before if e["type"] != "lead.profile_updated"]
    target = np.asarray(features)
    for n_activities in range(len(activities), -1, -1):
        for n_profiles in range(len(profiles), -1, -1):
            events = sorted(profiles[:n_profiles] + activities[:n_activities], key=event_time)
            if np.allclose(vector_of(lead, events), target, rtol=0, atol=1e-9):
                return n_profiles, n_activities
    return None


async def test_worker_examples_hold_only_what_was_known_before_the_label(
    kafka_bootstrap: str,
    redis_url: str,
    name_prefix: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    """Two simulated runs through one worker.

    Run "phased": every activity and profile event first, then the outcomes, then, for
    each lead with an outcome, an activity an hour after it, a repeat of the outcome and
    (for some) a second outcome. The example's vector is then exactly the vector of the
    lead's events before the outcome, and nothing that came after the label changes it or
    adds an example.

    Run "ordered": everything published in event-time order, as live traffic. The
    worker does not order one input topic against another, so an outcome can be
    applied before activities published ahead of it; the example then holds fewer
    events, but only ever events from before the label (checked exactly: per topic, a
    prefix of the lead's events before the outcome).
    """
    # An empty registry: the worker scores with the rules prior, the same scorer as here.
    settings = closed_loop_settings(name_prefix, kafka_bootstrap, redis_url, tmp_path / "models")
    scorer = load_scorer(settings)

    def simulated(run_id: str, seed: int) -> list[Event]:
        config = SimConfig(
            n_leads=300, span_days=40, seed=seed, start=SIM_START, max_life_days=20, run_id=run_id
        )
        return list(Simulator(config).events())

    phased, ordered = simulated("phased", 11), simulated("ordered", 12)
    leads = group_by_lead(phased + ordered)
    outcome_of = {
        lead: out for lead, evs in leads.items() if (out := events_before_outcome(evs)[1])
    }
    phased_leads = {e["subject"] for e in phased}
    phased_outcomes = [e for e in phased if e["type"] in OUTCOME_TYPES]
    assert len(phased_outcomes) >= 30 and len(outcome_of) - len(phased_outcomes) >= 30, (
        "too few outcomes"
    )
    # In the simulator nothing follows a lead's outcome, and every earlier event is earlier in time.
    for lead, outcome in outcome_of.items():
        before, _ = events_before_outcome(leads[lead])
        assert len(before) == len(leads[lead]) - 1
        assert all(event_time(e) <= event_time(outcome) for e in before)
    later = [after_outcome(out, 1) for out in phased_outcomes]
    second = [
        after_outcome(
            out, 2, "lead.disqualified" if out["type"] == "lead.converted" else "lead.converted"
        )
        for out in phased_outcomes[::3]
    ]
    await create_topics(settings)

    async with running_worker(settings, tmp_path / "worker.log") as worker:
        for part in (
            ordered,
            [e for e in phased if e["type"] not in OUTCOME_TYPES],
            phased_outcomes,
            later + phased_outcomes + second,  # after the label: news, a repeat, another outcome
        ):
            stats = await publish(part, settings)
            assert stats.sent == len(part)
            await wait_all_committed(settings, workers=[worker])
        # An outcome read before the activity it follows is held back and read again later
        # (leadscore.models.batch.outcome_clock): "all committed" can be seen between its
        # republication and its second reading, so wait for the examples themselves.

        async def read_training() -> list[Any]:
            return await read_to_end(
                kafka_bootstrap, [settings.training_topic], settings.topic_partitions
            )

        training = await wait_until(
            "an example for every lead with an outcome", read_training,
            lambda records: set(unique_examples(records)) >= set(outcome_of), workers=[worker],
            describe=lambda records: f"{len(unique_examples(records))} of {len(outcome_of)} leads",
        )  # fmt: skip
        features = await read_to_end(
            kafka_bootstrap, [settings.features_topic], settings.topic_partitions
        )
        counters = await ScoreStore(redis_client, settings.redis_prefix).stats()
        # The worker's own drift agent (its own group) reads the examples into the model's
        # performance window.
        performance_key = ClosedLoopKeys(settings.redis_prefix).performance

        async def labels_seen() -> int:
            raw = await redis_client.hget(performance_key, scorer.version)
            return int(orjson.loads(raw)["labels_seen"]) if raw else 0

        await wait_until(
            f"{len(training)} labels in the worker's performance window",
            labels_seen, lambda n: n >= len(training), workers=[worker], timeout_s=60.0,
        )  # fmt: skip
    assert "Crashed" not in worker.log_text(), worker.log_tail()
    assert await labels_seen() == len(training)

    # Exactly one example per lead with an outcome.
    examples = unique_examples(training)
    assert set(examples) == set(outcome_of)
    assert counters.get("training_examples") == len(examples), counters
    assert counters.get("training_examples_skipped", 0) == 0, counters

    stale = []
    for lead, example in examples.items():
        before, outcome = events_before_outcome(leads[lead])
        assert outcome is not None
        check_example(example, outcome, scorer.version)
        if lead in phased_leads:
            # The strongest check: the vector of the events before the label, nothing more.
            expected = vector_of(lead, before)
            assert example.feature_time is not None
            np.testing.assert_allclose(example.features, expected, rtol=0, atol=1e-9, err_msg=lead)
            assert example.feature_time == max(event_time(e) for e in before), lead
            p = float(scorer.probabilities(expected[None, :])[0])
            assert example.probability == pytest.approx(p, abs=1e-9)
        else:
            held = applied_prefixes(lead, before, example.features)
            assert held is not None, (
                f"{lead}: the example is not the vector of events before its outcome"
            )
            n_profiles = sum(e["type"] == "lead.profile_updated" for e in before)
            if held != (n_profiles, len(before) - n_profiles):
                stale.append((lead, held, len(before)))
    assert not stale, (
        f"ordered run: {len(stale)} of {len(outcome_of) - len(phased_outcomes)} examples miss "
        f"events published before their outcome: {stale[:10]}"
    )

    # Scored vectors: every active lead's, scored by the worker's model; each lead's last
    # one is the vector of all its activity and profile events, those after the outcome too.
    samples = [FeatureSample.model_validate_json(record.value) for record in features]
    last: dict[str, FeatureSample] = {}
    for record, sample in zip(features, samples):
        assert record.key == sample.lead_id.encode()
        assert sample.model_version == scorer.version
        assert sample.feature_spec_version == FEATURE_SPEC_VERSION
        assert len(sample.features) == len(FEATURE_NAMES)
        last[sample.lead_id] = sample  # one lead's samples share a partition, in offset order
    active = {
        lead for lead, evs in leads.items() if any(e["type"] not in OUTCOME_TYPES for e in evs)
    }
    assert set(last) == active
    news = group_by_lead(later)
    for lead, sample in last.items():
        everything = [e for e in leads[lead] + news.get(lead, []) if e["type"] not in OUTCOME_TYPES]
        expected = vector_of(lead, everything)
        np.testing.assert_allclose(sample.features, expected, rtol=0, atol=1e-9, err_msg=lead)
        if lead in news:
            assert not np.allclose(sample.features, examples[lead].features), lead


# --- 2. the drift agent on a shifted and a calm run ----------------------------------------------

#: Distinct leads per window (the default; ~3 simulated days here, see the module docstring).
WINDOW = 1000
BASELINE_WINDOWS = 3
#: Measured (window 1000, baseline 3): the first alert comes 7 windows (19.1 simulated
#: days) after the shift for seed 0, 6-7 for seeds 0-4; the first medium 11 windows after
#: it for seed 0. The bound leaves slack.
MAX_WINDOWS_TO_ALERT = 10
#: Windows published after the restart of the agent.
AFTER_RESTART = 3


@dataclass(frozen=True)
class Scenario:
    run: DriftRun
    samples: list[Sample]
    windows: list[OfflineWindow]


def _scenario(run: DriftRun) -> Scenario:
    samples = feature_samples(run, rules_scorer())
    config = drift_config(Settings(drift_window_size=WINDOW))
    return Scenario(run, samples, list(offline_windows(samples, WINDOW, BASELINE_WINDOWS, config)))


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    """The shifted run and its calm twin, simulated and replayed in two processes (~25 s)."""
    shifted = DriftRun(seed=0)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_scenario, [shifted, shifted.calm()]))
    return {"shifted": results[0], "calm": results[1]}


def drift_settings(prefix: str, kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Settings:
    # One partition: the agent reads the samples in event-time order (see the module docstring).
    return closed_loop_settings(
        prefix, kafka_bootstrap, redis_url, tmp_path / "models", topic_partitions=1,
        drift_window_size=WINDOW, drift_baseline_windows=BASELINE_WINDOWS,
    )  # fmt: skip


async def send_samples(settings: Settings, samples: list[Sample]) -> None:
    """Publish samples as the worker does (key lead id), batched, and wait for every ack."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, acks="all"
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.features_topic, sample.body, key=sample.lead_id.encode())
            for sample in samples
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@asynccontextmanager
async def running_agent(
    settings: Settings, redis: aioredis.Redis
) -> AsyncIterator[tuple[DriftAgent, asyncio.Task[None]]]:
    """A drift agent running as a task of this process; cancelled on the way out."""
    agent = DriftAgent(settings, redis)
    task = asyncio.create_task(agent.run())
    try:
        yield agent, task
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        agent.executor.shutdown(wait=True)


async def wait_consumed(
    settings: Settings, agent: DriftAgent, task: asyncio.Task[None], n_samples: int, n_windows: int
) -> None:
    """Wait until the agent has read ``n_samples``, tested ``n_windows`` and committed its offsets."""

    async def probe() -> tuple[dict[str, Any], bool]:
        if task.done():
            task.result()  # raises what ended the agent
            pytest.fail("the drift agent stopped", pytrace=False)
        topics = [settings.features_topic]
        ends = await end_offsets(settings.kafka_bootstrap, topics, 1)
        committed = await committed_offsets(
            settings.kafka_bootstrap, f"{settings.app_id}-drift", topics, 1
        )
        return dict(agent.stats), ends == committed

    await wait_until(
        f"{n_samples} samples and {n_windows} windows through the drift agent",
        probe,
        lambda seen: (
            seen[0]["samples"] >= n_samples and seen[0]["windows"] >= n_windows and seen[1]
        ),
        timeout_s=90.0,
    )
    assert agent.stats["samples"] == n_samples and agent.stats["windows"] == n_windows, agent.stats
    assert agent.stats["invalid"] == 0, agent.stats


async def drift_events(settings: Settings) -> list[DriftEvent]:
    records = await read_to_end(settings.kafka_bootstrap, [settings.drift_topic], 1)
    return [DriftEvent.model_validate_json(record.value) for record in records]


def check_against_offline(
    events: list[DriftEvent], windows: list[OfflineWindow], version: str
) -> None:
    """The agent's reports are the offline monitor's windows, in order, one each."""
    assert [e.window_index for e in events] == [w.index for w in windows]
    for event, window in zip(events, windows):
        assert event.model_version == version
        assert event.type == ("drift.window" if window.tested else "drift.baseline"), event
        assert event.level == window.level, (event.window_index, event.level, window.level)
        assert event.n_rows == WINDOW
        assert event.window_end == datetime.fromtimestamp(window.end, UTC)
        assert event.window_start == datetime.fromtimestamp(window.start, UTC)


async def test_a_shift_raises_a_drift_alert_within_bounded_windows_and_a_restart_resumes(
    scenarios: dict[str, Scenario], kafka_bootstrap: str, redis_url: str, name_prefix: str,
    redis_client: aioredis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    scenario = scenarios["shifted"]
    shift_at = scenario.run.shift_at
    assert shift_at is not None
    settings = drift_settings(name_prefix, kafka_bootstrap, redis_url, tmp_path)
    version = orjson.loads(scenario.samples[0].body)["model_version"]
    windows = scenario.windows
    # Stop the first agent right after the window that closes AFTER_RESTART before the end:
    # nothing is left in its open window, so the restarted agent's windows are the same.
    cut = windows[-AFTER_RESTART - 1].closed_by + 1
    await create_topics(settings)

    await send_samples(settings, scenario.samples[:cut])
    async with running_agent(settings, redis_client) as (agent, task):
        await wait_consumed(settings, agent, task, cut, len(windows) - AFTER_RESTART)
    events = await drift_events(settings)
    check_against_offline(events, windows[:-AFTER_RESTART], version)

    # Detection: nothing before the shift; the first alert in a window that ends after it,
    # within the bound.
    t = shift_at
    assert [e.window_index for e in events if e.level != "none" and e.window_end <= t] == []
    after = [e for e in events if e.window_end > t]
    first = next(i for i, e in enumerate(after) if e.level != "none")
    assert first + 1 <= MAX_WINDOWS_TO_ALERT, f"first alert {first + 1} windows after the shift"
    assert after[first].window_end > t
    alert = after[first]
    assert alert.report["persistent_features"], alert.report
    assert alert.type == "drift.window" and alert.report["tested"]

    # Kept in Redis for the API: newest first, the latest per model, the monitor's state.
    keys = ClosedLoopKeys(settings.redis_prefix)
    kept = [
        DriftEvent.model_validate_json(raw) for raw in await redis_client.lrange(keys.events, 0, -1)
    ]
    assert [e.id for e in kept] == [e.id for e in reversed(events)]
    latest = await redis_client.hget(keys.latest, version)
    assert latest is not None and DriftEvent.model_validate_json(latest).id == events[-1].id
    assert await redis_client.exists(keys.state(version))

    # A new agent in the same group resumes: the next window index, tested against the saved
    # baseline (no second baseline), with the persistence history carried over.
    await send_samples(settings, scenario.samples[cut:])
    async with running_agent(settings, redis_client) as (agent, task):
        await wait_consumed(settings, agent, task, len(scenario.samples) - cut, AFTER_RESTART)
    resumed = (await drift_events(settings))[len(events) :]
    assert all(e.type == "drift.window" for e in resumed), [e.type for e in resumed]
    check_against_offline(resumed, windows[-AFTER_RESTART:], version)
    assert len(await redis_client.lrange(keys.events, 0, -1)) == len(windows)
    assert any(e.level in ("medium", "high") for e in resumed), (
        "the shift never reached a medium alert"
    )


async def test_a_calm_run_raises_no_drift_alert(
    scenarios: dict[str, Scenario], kafka_bootstrap: str, redis_url: str, name_prefix: str,
    redis_client: aioredis.Redis, tmp_path: Path,
) -> None:  # fmt: skip
    scenario = scenarios["calm"]
    settings = drift_settings(name_prefix, kafka_bootstrap, redis_url, tmp_path)
    await create_topics(settings)
    await send_samples(settings, scenario.samples)
    async with running_agent(settings, redis_client) as (agent, task):
        await wait_consumed(settings, agent, task, len(scenario.samples), len(scenario.windows))
    events = await drift_events(settings)
    check_against_offline(events, scenario.windows, events[0].model_version)
    tested = [e for e in events if e.type == "drift.window"]
    assert len(tested) == len(scenario.windows) - BASELINE_WINDOWS >= 15
    assert [(e.window_index, e.level) for e in tested if e.level != "none"] == []
