"""Run ``python -m leadscore worker`` against the test broker and Redis, and read what it wrote.

Used by ``test_worker.py``. Everything here waits with a deadline and fails the test
with the worker's log tail when the deadline passes; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.types import TP

from leadscore.infra.embedded.processes import spawn_child
from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.kafka.offsets import fetch_end_offsets
from leadscore.infra.launch import READY_LINE, settings_env
from leadscore.infra.privacy.crypto import Keyring
from leadscore.settings import Settings

_T = TypeVar("_T")

#: Start to "[^Worker]: Ready" (group joined, table recovered). ~10-15 s on an idle box;
#: a restart after SIGKILL waits for the dead member's session to expire first.
READY_TIMEOUT_S = 90.0
#: Waits for the worker to get through what was published.
DONE_TIMEOUT_S = 90.0
_POLL_S = 0.2


def worker_settings(
    prefix: str, *, kafka_bootstrap: str, redis_url: str, model_dir: Path, **overrides: Any
) -> Settings:
    """Settings of one worker run: its own topics, group, table and Redis keys under ``prefix``."""
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "redis_url": redis_url,
        "app_id": f"{prefix}worker",
        "redis_prefix": prefix,
        "model_dir": model_dir,
        "activity_topic": f"{prefix}leads.activity.v1",
        "profile_topic": f"{prefix}leads.profile.v1",
        "outcome_topic": f"{prefix}leads.outcome.v1",
        "scores_topic": f"{prefix}leads.scores.v1",
        "dead_letter_topic": f"{prefix}leads.dead-letter.v1",
        "model_events_topic": f"{prefix}models.events.v1",
        "features_topic": f"{prefix}leads.features.v1",
        "training_topic": f"{prefix}leads.training.v1",
        "erasures_topic": f"{prefix}leads.erasures.v1",
        "drift_topic": f"{prefix}models.drift.v1",
        "score_change_threshold": 0,  # publish every rescore
        "topic_partitions": 4,
        # the test models are trained on a few hundred simulated leads: use them, not the
        # cold-start rules prior (tests/unit/streams/test_cold_start.py covers that)
        "min_training_labels": 0,
        # Most tests read lead ids off the scores topic; tests/integration/test_privacy.py
        # runs the default (pseudonyms on the topics) end to end.
        "topic_lead_ids": "plain",
    }
    values.update(overrides)
    return Settings(**values)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``Settings()`` in the child equal ``settings``.

    Inherited ``LEADSCORE_*``, ``KAFKA_BOOTSTRAP`` and ``REDIS_URL`` are dropped, so the
    child sees only what the test chose.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LEADSCORE_") and key not in ("KAFKA_BOOTSTRAP", "REDIS_URL")
    }
    return {**env, **settings_env(settings), "PYTHONUNBUFFERED": "1"}


class WorkerProcess:
    """One ``python -m leadscore worker`` child, logging to ``log_path``.

    The child has its own process group and gets SIGKILL if the test process dies
    (``spawn_child``); call :meth:`stop` or :meth:`kill` in a ``finally``.
    """

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        log_path.write_bytes(b"")
        self.process: subprocess.Popen[bytes] = spawn_child(
            [sys.executable, "-m", "leadscore", "worker", "--loglevel", "info"],
            log_path,
            worker_env(settings),
            Path.cwd(),
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"worker pid {self.process.pid} ({state}), log {self.log_path}:\n{self.log_tail()}"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the worker died: {self.describe()}", pytrace=False)

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Wait for "[^Worker]: Ready" (group joined, table recovered); return how long it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if READY_LINE in self.log_path.read_bytes():
                return time.monotonic() - started
            await asyncio.sleep(_POLL_S)
        pytest.fail(f"not ready after {timeout_s:.0f} s: {self.describe()}", pytrace=False)

    def kill(self) -> None:
        """SIGKILL the worker's process group (no shutdown, no final commit) and reap it."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace_s)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.wait(timeout=30)


@asynccontextmanager
async def running_worker(settings: Settings, log_path: Path) -> AsyncIterator[WorkerProcess]:
    """A worker child that is ready; stopped on the way out whatever happens."""
    worker = WorkerProcess(settings, log_path)
    try:
        await worker.wait_ready()
        yield worker
    finally:
        worker.stop()


async def wait_until(
    what: str,
    probe: Callable[[], Awaitable[_T]],
    done: Callable[[_T], bool],
    *,
    timeout_s: float = DONE_TIMEOUT_S,
    workers: Iterable[WorkerProcess] = (),
    poll_s: float = _POLL_S,
    describe: Callable[[_T], str] = repr,
) -> _T:
    """Call ``probe`` until ``done(result)``; after ``timeout_s``, fail with the last result.

    Fails at once if one of ``workers`` exits.
    """
    workers = list(workers)
    deadline = time.monotonic() + timeout_s
    while True:
        for worker in workers:
            worker.check_alive()
        result = await probe()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            logs = "\n\n".join(worker.describe() for worker in workers)
            pytest.fail(
                f"no {what} within {timeout_s:.0f} s; last seen: {describe(result)}\n{logs}",
                pytrace=False,
            )
        await asyncio.sleep(poll_s)


# --- the broker side -------------------------------------------------------------------------


async def create_topics(settings: Settings) -> None:
    """Create the run's topics up front (the worker would, but tests publish before it starts)."""
    await ensure_topics(settings)


async def end_offsets(bootstrap: str, topics: Iterable[str], partitions: int) -> dict[TP, int]:
    """The real end offset of each partition, from Fetch (Tansu's ListOffsets is short)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TP(topic, p): 0 for topic in topics for p in range(partitions)}
        return await fetch_end_offsets(consumer, tps)
    finally:
        await consumer.stop()


async def committed_offsets(
    bootstrap: str, group: str, topics: Iterable[str], partitions: int
) -> dict[TP, int]:
    """The group's committed offset of each partition (0 where nothing is committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            TP(topic, p): (await consumer.committed(TopicPartition(topic, p))) or 0
            for topic in topics
            for p in range(partitions)
        }
    finally:
        await consumer.stop()


async def commit_lag(settings: Settings) -> dict[str, tuple[int, int]]:
    """Input partitions whose committed offset is behind the end: ``kind:p -> (end, committed)``."""
    topics, n = settings.input_topics, settings.topic_partitions
    ends = await end_offsets(settings.kafka_bootstrap, topics, n)
    committed = await committed_offsets(settings.kafka_bootstrap, settings.app_id, topics, n)
    return {
        f"{tp.topic.rsplit('.', 2)[-2]}:{tp.partition}": (end, committed[tp])
        for tp, end in sorted(ends.items())
        if committed[tp] != end
    }


async def wait_all_committed(
    settings: Settings, *, timeout_s: float = DONE_TIMEOUT_S, workers: Iterable[WorkerProcess] = ()
) -> dict[TP, int]:
    """Wait until the worker's group has committed every input record there is.

    Faust commits only after the batch's Redis write returned and its sends were
    flushed, so after this every output of every input record is in place.
    """
    topics = settings.input_topics
    n = settings.topic_partitions

    async def probe() -> tuple[dict[TP, int], dict[TP, int]]:
        ends = await end_offsets(settings.kafka_bootstrap, topics, n)
        committed = await committed_offsets(settings.kafka_bootstrap, settings.app_id, topics, n)
        return ends, committed

    ends, _ = await wait_until(
        f"commit of every input record by group {settings.app_id}",
        probe,
        lambda pair: pair[0] == pair[1],
        timeout_s=timeout_s,
        workers=workers,
        describe=lambda pair: (
            "partition: (end, committed) "
            + ", ".join(
                f"{tp.topic.rsplit('.', 2)[-2]}:{tp.partition}: ({end}, {pair[1][tp]})"
                for tp, end in sorted(pair[0].items())
                if end != pair[1][tp]
            )
        ),
    )
    return ends


async def read_to_end(
    bootstrap: str, topics: Iterable[str], partitions: int, *, timeout_s: float = 60.0
) -> list[ConsumerRecord]:
    """Every record of ``topics`` up to their current end, in (topic, partition, offset) order."""
    topics = list(topics)
    ends = await end_offsets(bootstrap, topics, partitions)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        tps = [TopicPartition(tp.topic, tp.partition) for tp in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[TP(tp.topic, tp.partition)] > 0}
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"could not read {sorted(map(str, remaining))} to their ends {ends} "
                    f"within {timeout_s:.0f} s",
                    pytrace=False,
                )
            batch = await consumer.getmany(timeout_ms=500)
            for rows in batch.values():
                records.extend(rows)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[TP(tp.topic, tp.partition)]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return records


async def send_records(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> list[Any]:
    """Send (topic, key, value) records in order, one at a time; their RecordMetadata."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        return [
            await producer.send_and_wait(topic, value=value, key=key)
            for topic, key, value in records
        ]
    finally:
        await producer.stop()


def last_value_per_key(records: Iterable[ConsumerRecord]) -> dict[bytes, ConsumerRecord]:
    """The newest record of each key (records in offset order within a partition)."""
    last: dict[bytes, ConsumerRecord] = {}
    for record in records:
        last[record.key] = record
    return last


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-lead_state-changelog"


async def table_states(settings: Settings) -> tuple[dict[str, dict[str, Any]], dict[str, set[int]]]:
    """The worker's lead table as its changelog says: lead -> state dict, lead -> partitions.

    The table is keyed by pseudonym and its values are sealed, without the lead id
    (docs/privacy.md): they are opened with the data keys and named by Redis's map back.
    """
    records = await read_to_end(
        settings.kafka_bootstrap, [changelog_topic(settings)], settings.topic_partitions
    )
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        raw = await client.hgetall(f"{settings.redis_prefix}ids")
        ids = {_text(k): _text(v) for k, v in raw.items()}
    finally:
        await client.aclose()
    keyring = Keyring.from_settings(settings)
    partitions: dict[str, set[int]] = {}
    for record in records:
        partitions.setdefault(ids.get(record.key.decode(), record.key.decode()), set()).add(
            record.partition
        )
    states = {}
    for key, record in last_value_per_key(records).items():
        if record.value is None:
            continue  # a tombstone: the lead was erased
        lead = ids.get(key.decode(), key.decode())
        state = orjson.loads(keyring.open(record.value, key))
        state["lead_id"] = lead
        if state.get("last_score_event") is not None:
            state["last_score_event"]["lead_id"] = lead
        states[lead] = state
    return states, partitions


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def by_lead(records: Iterable[ConsumerRecord]) -> dict[str, list[dict[str, Any]]]:
    """Score events per lead, in publish order (one lead's scores share a partition)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        event = orjson.loads(record.value)
        out.setdefault(event["lead_id"], []).append(event)
    return out


def without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}
