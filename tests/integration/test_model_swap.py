"""A running worker swaps models on a ``models.events.v1`` message, losing no input event.

The worker's registry poll is set to an hour, so only the message can cause a swap.
While simulated events stream in, a second model is trained and promoted through the
CLI's code path (:func:`leadscore.infra.model_admin.promote_model`), then rolled back
(:func:`leadscore.infra.model_admin.rollback_model`), then a stale promotion event is sent by hand.
Score events show when each swap happened; the worker's table and counters show that
every input event was applied exactly once across the swaps.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from model_cache import ModelCache
from worker_harness import (
    WorkerProcess,
    create_topics,
    running_worker,
    table_states,
    wait_all_committed,
    wait_until,
    worker_settings,
)

from leadscore.infra.kafka.publish import publish
from leadscore.infra.model_admin import promote_model, rollback_model
from leadscore.infra.model_events import publish_model_event
from leadscore.infra.redis_store import ScoreStore
from leadscore.jobs.train import train_job
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.models import champion_changed
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: How soon after the announcement the first score of the new model must appear.
SWAP_DEADLINE_S = 10.0
#: Input events per second while the models change.
RATE_PER_S = 120.0


@pytest.fixture(scope="module")
def first_model(
    tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache
) -> tuple[Path, str]:
    """A registry of its own holding one small promoted model (~10 s, or a copy of the one
    test_worker.py uses, see model_cache.py): (directory, version)."""
    model_dir = tmp_path_factory.mktemp("swap-models")
    version = model_cache.registry(
        model_dir, leads=800, folds=2, search="none", compare=("ensemble",), seed=0
    )
    return model_dir, version


class ScoreWatcher:
    """Reads the scores topic from the start, in the background: (model_version, published_at).

    Published, not ``scored_at``: that is the causing record's broker time (the same on a
    replay), so two leads' scores made in consecutive batches can carry it in the other
    order; the score record's own timestamp follows the order the batches ran in.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scores: list[tuple[str, datetime]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ScoreWatcher:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        tps = [
            TopicPartition(self.settings.scores_topic, p)
            for p in range(self.settings.topic_partitions)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._read(consumer))
        return self

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                for rows in (await consumer.getmany(timeout_ms=200)).values():
                    for row in rows:
                        score = orjson.loads(row.value)
                        published = datetime.fromtimestamp(row.timestamp / 1000, UTC)
                        self.scores.append((score["model_version"], published))
        finally:
            await consumer.stop()

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def first_of(self, version: str, after: datetime, worker: WorkerProcess) -> datetime:
        """The ``scored_at`` of the first score by ``version`` made after ``after``."""

        async def probe() -> list[datetime]:
            return [at for v, at in self.scores if v == version and at >= after]

        found = await wait_until(
            f"score event by model {version}",
            probe,
            bool,
            timeout_s=SWAP_DEADLINE_S + 20,
            workers=[worker],
            describe=lambda _: f"{len(self.scores)} scores, last {self.scores[-3:]}",
        )
        return min(found)


async def wait_for_log(worker: WorkerProcess, text: str, what: str, timeout_s: float) -> None:
    """Wait until the worker's log holds ``text``."""

    async def probe() -> str:
        return worker.log_text()

    await wait_until(
        what,
        probe,
        lambda log: text in log,
        timeout_s=timeout_s,
        workers=[worker],
        describe=lambda _: f"{text!r} not in the log yet",
    )


def model_runs(scores: list[tuple[str, datetime]]) -> list[tuple[str, int]]:
    """Scores in the order they were made, as runs of one model: [(version, count), ...]."""
    runs: list[tuple[str, int]] = []
    for version, _ in sorted(scores, key=lambda s: s[1]):
        if runs and runs[-1][0] == version:
            runs[-1] = (version, runs[-1][1] + 1)
        else:
            runs.append((version, 1))
    return runs


async def test_a_promotion_event_swaps_the_model_without_losing_events(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    name_prefix: str,
    first_model: tuple[Path, str],
    tmp_path: Path,
) -> None:
    model_dir, v1 = first_model
    settings = worker_settings(
        name_prefix,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=model_dir,
        model_poll_s=3600.0,  # only the message can cause a swap in this test
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    # ~11,000 events (90 s at the rate), at most ~50 per lead: fewer than the 256 ids a
    # lead's state remembers, so the state lists every event applied to it.
    events = list(Simulator(SimConfig(n_leads=2000, span_days=6, seed=5, start=start)).events())
    await create_topics(settings)
    stop_publishing = asyncio.Event()
    timings: dict[str, float] = {}

    async with (
        running_worker(settings, tmp_path / "worker.log") as worker,
        ScoreWatcher(settings) as watcher,
    ):
        listening = f"listening for model events on {settings.model_events_topic}"
        await wait_for_log(worker, listening, "the model-event listener", timeout_s=30)
        publishing = asyncio.create_task(
            publish(events, settings, RATE_PER_S, stop=stop_publishing)
        )
        await watcher.first_of(v1, datetime(2000, 1, 1, tzinfo=UTC), worker)

        # A second model, trained while events stream in (in a thread: the loop keeps publishing).
        started = time.monotonic()
        trained = await asyncio.to_thread(
            train_job,
            Settings(model_dir=model_dir),
            leads=800,
            folds=2,
            search="none",
            compare=("ensemble",),
            seed=1,
            promote=False,
        )
        v2 = trained.version
        timings["train_s"] = time.monotonic() - started
        assert ModelRegistry(model_dir).champion() == v1  # saved, not promoted

        # (a) promote through the CLI's code path: the event swaps the worker to v2.
        promoted = await asyncio.to_thread(promote_model, settings, v2, reason="test: promote")
        assert promoted.announce_error is None, promoted.announce_error
        first_v2 = await watcher.first_of(v2, promoted.event.at, worker)
        timings["promote_to_first_score_s"] = (first_v2 - promoted.event.at).total_seconds()

        # (c) roll back: the event swaps it back to v1.
        rolled_back = await asyncio.to_thread(rollback_model, settings, reason="test: rollback")
        assert rolled_back.announce_error is None, rolled_back.announce_error
        assert (rolled_back.event.version, rolled_back.event.previous) == (v1, v2)
        back_to_v1 = await watcher.first_of(v1, rolled_back.event.at, worker)
        timings["rollback_to_first_score_s"] = (back_to_v1 - rolled_back.event.at).total_seconds()

        # A stale event (v2 is no longer the champion) must not swap: the pointer decides.
        stale = champion_changed("model.promoted", version=v2, previous=v1, reason="stale")
        await publish_model_event(settings, stale)
        seen = f"model event {stale.id} names {v2}, but the champion is {v1}"
        await wait_for_log(worker, seen, "the stale event to be seen", timeout_s=SWAP_DEADLINE_S)
        await asyncio.sleep(1.0)  # a few more batches after it, all still v1
        assert not publishing.done(), "the events ran out before the last swap; raise their number"
        stop_publishing.set()
        stats = await publishing
        await wait_all_committed(settings, workers=[worker])
        states, _ = await table_states(settings)
        counters = await ScoreStore(redis_client, settings.redis_prefix).stats()
        await asyncio.sleep(1.0)  # the watcher reads the last scores
        scores = list(watcher.scores)
    log = worker.log_text()
    print(f"swap timings: {timings}; {stats.sent} events published")  # shown with -s

    for limit in ("promote_to_first_score_s", "rollback_to_first_score_s"):
        assert 0 <= timings[limit] <= SWAP_DEADLINE_S, timings
    # Each swap happened once, caused by the event, and between batches: ordered by the
    # time they were made, the scores are v1, then v2, then v1 again, never mixed.
    runs = model_runs(scores)
    assert [version for version, _ in runs] == [v1, v2, v1], runs
    assert f"model {v2} replaces {v1} (cause: model.promoted event {promoted.event.id})" in log
    assert (
        f"model {v1} replaces {v2} (cause: model.rolled_back event {rolled_back.event.id})" in log
    )
    assert len(re.findall(r"model \S+ replaces", log)) == 2, log
    assert "Crashed" not in log and "could not be loaded" not in log, worker.log_tail()

    # (b) every published event was applied exactly once, across both swaps.
    sent = events[: stats.sent]
    ids_of: dict[str, list[str]] = {}
    for event in sent:
        ids_of.setdefault(event["subject"], []).append(event["id"])
    for lead, ids in ids_of.items():
        assert sorted(states[lead]["seen_ids"]) == sorted(ids), lead
    assert counters.get("events") == stats.sent, counters
    assert counters.get("applied") == stats.sent, counters
    assert counters.get("duplicates", 0) == 0 and counters.get("dead_letters", 0) == 0, counters
