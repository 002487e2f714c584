"""Faust tables recover exactly after a SIGKILL on Tansu, with ``leadscore.streams.tansu_compat``.

The end-to-end test runs ``apps/recovery_app.py`` (one changelogged table, idempotent
updates) as a subprocess against the session broker from ``conftest.py``, 16 keys x 1,500
events in two rounds:

1. Process the first half, wait until every source offset is committed, SIGKILL the idle
   worker and restart it. Nothing is left to replay, so the table can only come back from
   the changelog, and must come back exactly.
2. Send the second half, SIGKILL mid-stream, restart, finish: each key must end with
   exactly one applied update per event (replays after the crash are skipped).

Round 1 comes first because after a restart with a backlog stock Faust can stop advancing
the committed offset of a partition (one offset per commit): ``Recovery`` resumes the
source partitions before ``perform_seek()`` resets ``_read_offset`` to the committed
offset, and messages read in between become a phantom gap that doubles entries in
``Consumer._acked``. An idle-kill check after such a restart would replay instead of
testing recovery. (``leadscore.streams.acked_offsets`` fixes that; the stock run here
does not have it.)

Stock Faust fails round 1 on Tansu: 312 of 12,000 updates missing, all in one changelog
partition (Tansu's ListOffsets answers the first offset of the last batch + 1). Set
``LEADSCORE_TANSU_STOCK_REPRO=1`` to run the stock worker too, as an expected failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import FutureMessage

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.kafka.offsets import fetch_end_offsets
from leadscore.streams.acked_offsets import install_acked_offsets_fix
from leadscore.streams.tansu_compat import (
    BufferedSendError,
    install_commit_flush_fix,
    install_fetch_highwater_fix,
    install_tansu_compat,
)

APP = Path(__file__).parent / "apps" / "recovery_app.py"
PARTITIONS = 4
KEYS = 16
EVENTS_PER_KEY = 1_500  # 24,000 events
KILL_AFTER_FRACTION = 0.35
READY_TIMEOUT_S = 45.0  # start to recovered; measured ~13 s after a SIGKILL, ~5 s fresh
FINISH_TIMEOUT_S = 60.0
# Opt-in switch of this test module (the stock run adds ~35 s and is expected to fail).
_RUN_STOCK = os.environ.get("LEADSCORE_TANSU_STOCK_REPRO") == "1"

Snapshot = dict[str, Any]


# --- the broker side ---------------------------------------------------------------------


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _fill(bootstrap: str, topic: str, seqs: range) -> dict[int, int]:
    """Write events ``seqs`` of every key; the end offset of each partition afterwards."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic, key=f"k{key}".encode(), value=json.dumps({"seq": seq}).encode()
            )
            for seq in seqs
            for key in range(KEYS)
        ]
        delivered = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for metadata in delivered:
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
    return ends


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            partition: await consumer.committed(TopicPartition(topic, partition))
            for partition in range(PARTITIONS)
        }
    finally:
        await consumer.stop()


# --- the worker side ---------------------------------------------------------------------


class _Worker:
    """One ``recovery_app.py`` worker process and its log."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(APP), str(config), "worker",
                 "--web-port", str(free_port()), "--loglevel", "info"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_lines(self, needle: str) -> list[str]:
        return [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if needle in line
        ]


class _Run:
    """Launch, watch and kill workers of one app; reads the table snapshot they write."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.snapshot_path = workdir / "snapshot.json"
        self.config_path = workdir / "config.json"
        self.config_path.write_text(
            json.dumps(
                {
                    **config,
                    "snapshot_path": str(self.snapshot_path),
                    "datadir": str(workdir / "data"),
                }
            )
        )
        self.workers: list[_Worker] = []

    def launch(self, name: str) -> _Worker:
        self.snapshot_path.unlink(missing_ok=True)  # never read a dead worker's table
        worker = _Worker(self.config_path, self.workdir / f"worker-{name}.log")
        self.workers.append(worker)
        return worker

    def snapshot(self) -> Snapshot | None:
        try:
            snapshot: Snapshot = json.loads(self.snapshot_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return snapshot

    def poll(
        self, worker: _Worker, condition: Callable[[Snapshot], bool], timeout_s: float
    ) -> Snapshot | None:
        """The first snapshot meeting ``condition`` within ``timeout_s``, else ``None``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                pytest.fail(f"worker exited ({worker.process.returncode}):\n{worker.log_tail()}")
            snapshot = self.snapshot()
            if snapshot is not None and condition(snapshot):
                return snapshot
            time.sleep(0.1)
        return None

    def wait_for(
        self, worker: _Worker, what: str, condition: Callable[[Snapshot], bool], timeout_s: float
    ) -> Snapshot:
        snapshot = self.poll(worker, condition, timeout_s)
        if snapshot is None:
            last = self.snapshot()
            pytest.fail(
                f"no {what} within {timeout_s} s; last snapshot {last}:\n{worker.log_tail()}"
            )
        return snapshot

    def kill_all(self) -> None:
        for worker in self.workers:
            worker.kill()


@contextmanager
def _run(workdir: Path, config: dict[str, Any]) -> Iterator[_Run]:
    run = _Run(workdir, config)
    try:
        yield run
    finally:
        run.kill_all()


def _applied(snapshot: Snapshot) -> int:
    return sum(applied for applied, _ in snapshot["table"].values())


def _finished(events_per_key: int) -> Callable[[Snapshot], bool]:
    """Every key has seen its last event (which says nothing about lost updates)."""

    def finished(snapshot: Snapshot) -> bool:
        table = snapshot["table"]
        return len(table) == KEYS and all(last == events_per_key for _, last in table.values())

    return finished


def _wrong_keys(snapshot: Snapshot, events_per_key: int) -> dict[str, list[int]]:
    """Keys whose ``[applied updates, last seq]`` is not ``[events_per_key] * 2``."""
    expected = [events_per_key, events_per_key]
    table = snapshot["table"]
    wrong = {key: value for key, value in table.items() if value != expected}
    wrong.update({f"k{k}": [0, 0] for k in range(KEYS) if f"k{k}" not in table})
    return wrong


# --- tests -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "apply_fix",
    [
        pytest.param(True, id="with-fix"),
        pytest.param(
            False,
            id="stock",
            marks=[
                pytest.mark.skipif(not _RUN_STOCK, reason="set LEADSCORE_TANSU_STOCK_REPRO=1"),
                pytest.mark.xfail(
                    reason="Tansu's ListOffsets end is short; stock Faust stops restoring early",
                    strict=False,
                ),
            ],
        ),
    ],
)
def test_table_recovers_exactly_after_sigkill(
    kafka_bootstrap: str, name_prefix: str, tmp_path: Path, apply_fix: bool
) -> None:
    app_id = f"{name_prefix}recovery"
    topic = f"{name_prefix}events.v1"
    asyncio.run(_create_topic(kafka_bootstrap, topic))
    half = EVENTS_PER_KEY // 2
    config = {
        "app_id": app_id,
        "bootstrap": kafka_bootstrap,
        "source_topic": topic,
        "partitions": PARTITIONS,
        "apply_fix": apply_fix,
    }
    with _run(tmp_path, config) as run:
        # Round 1: finish, commit everything, SIGKILL idle, restart. Nothing is left to
        # replay, so the restarted table can only come from the changelog: it must be exact.
        ends = asyncio.run(_fill(kafka_bootstrap, topic, range(1, half + 1)))
        worker = run.launch("first")
        run.wait_for(worker, "the first half", _finished(half), READY_TIMEOUT_S + FINISH_TIMEOUT_S)
        deadline = time.monotonic() + 20
        while (committed := asyncio.run(_committed(kafka_bootstrap, app_id, topic))) != ends:
            assert time.monotonic() < deadline, f"committed {committed} after 20 s, want {ends}"
            time.sleep(0.3)
        worker.kill()
        started = time.monotonic()
        worker = run.launch("recovered")
        ready = run.wait_for(worker, "recovery", lambda s: True, READY_TIMEOUT_S)
        restart_to_ready_s = time.monotonic() - started
        # With nothing to replay the table is final at once; allow a moment for stragglers.
        recovered = run.poll(worker, _finished(half), 3.0) or run.snapshot() or ready
        corrections = worker.log_lines("ListOffsets said")
        print(
            f"\nrestart-to-recovered after SIGKILL: {restart_to_ready_s:.1f} s; "
            f"end offsets corrected: {len(corrections)}"
        )
        assert _wrong_keys(recovered, half) == {}, (
            f"table restored from the changelog differs: {_wrong_keys(recovered, half)} "
            f"(want [{half}, {half}] each); recovery highwaters {recovered['active_highwaters']}"
        )

        # Round 2: SIGKILL mid-stream, restart, finish. Replays after the crash must be
        # skipped and no update lost.
        asyncio.run(_fill(kafka_bootstrap, topic, range(half + 1, EVENTS_PER_KEY + 1)))
        target = half * KEYS + KILL_AFTER_FRACTION * (EVENTS_PER_KEY - half) * KEYS
        snapshot = run.wait_for(
            worker, "progress", lambda s: _applied(s) >= target, FINISH_TIMEOUT_S
        )
        worker.kill()
        assert not _finished(EVENTS_PER_KEY)(snapshot), "finished before the mid-stream SIGKILL"
        worker = run.launch("restarted")
        snapshot = run.wait_for(
            worker, "the last event of every key", _finished(EVENTS_PER_KEY),
            READY_TIMEOUT_S + FINISH_TIMEOUT_S,
        )  # fmt: skip
        assert _wrong_keys(snapshot, EVENTS_PER_KEY) == {}, (
            f"after SIGKILL mid-stream + restart: {_wrong_keys(snapshot, EVENTS_PER_KEY)} "
            f"(want [{EVENTS_PER_KEY}, {EVENTS_PER_KEY}] each)"
        )


async def test_fetch_end_offsets_reads_the_real_end(kafka_bootstrap: str, name_prefix: str) -> None:
    """3 single records + 10 in one batch: the end is 13, whatever ListOffsets says."""
    topic = f"{name_prefix}ends.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, b"single-%d" % i, partition=0)
        batch = producer.create_batch()
        for i in range(10):
            batch.append(key=None, value=b"batched-%d" % i, timestamp=None)
        batch.close()
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        listed = await consumer.end_offsets(tps)
        assert listed[tps[0]] <= 13  # Tansu 0.6 says 4 here; Apache Kafka says 13
        found = await fetch_end_offsets(
            consumer, {TP(tp.topic, tp.partition): listed[tp] for tp in tps}
        )
    finally:
        await consumer.stop()
    assert found == {TP(topic, 0): 13, TP(topic, 1): 0}, f"ListOffsets said {listed}"


def test_install_is_idempotent() -> None:
    def patched() -> tuple[object, ...]:
        return (
            AIOKafkaConsumerThread._highwaters,
            ProducerBuffer.put,
            ProducerBuffer.flush,
            Consumer._new_offset,
        )

    install_tansu_compat()
    installed = patched()
    install_fetch_highwater_fix()
    install_commit_flush_fix()
    install_acked_offsets_fix()
    install_tansu_compat()
    assert patched() == installed
    assert getattr(Consumer._new_offset, "__wrapped__", None) is not None


# --- flush before commit (no broker needed) ------------------------------------------------


class _SlowChannel:
    """Stands in for a topic whose producer takes ``handover_s`` to accept each message."""

    def __init__(self, handover_s: float, fail: bool = False) -> None:
        self.handover_s = handover_s
        self.fail = fail

    def get_topic_name(self) -> str:
        return "slow-changelog"

    async def publish_message(self, fut: FutureMessage, wait: bool = False) -> None:
        await asyncio.sleep(self.handover_s)  # e.g. aiokafka waiting for room in a full batch
        if self.fail:
            fut.set_exception(ConnectionError("broker went away"))
        else:
            fut.set_result(None)  # type: ignore[arg-type]


async def _started_buffer() -> ProducerBuffer:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    return buffer


def _message(channel: _SlowChannel) -> FutureMessage:
    return FutureMessage(SimpleNamespace(channel=channel))  # type: ignore[arg-type]


async def test_flush_waits_for_every_buffered_message() -> None:
    """Stock ``ProducerBuffer.flush`` returns after 0.1 s without a hand-over; ours waits."""
    install_commit_flush_fix()
    buffer = await _started_buffer()
    try:
        messages = [_message(_SlowChannel(handover_s=0.25)) for _ in range(3)]
        for message in messages:
            buffer.put(message)
        await asyncio.wait_for(buffer.flush(), timeout=5)
        assert all(message.done() for message in messages)
    finally:
        await buffer.stop()


async def test_flush_refuses_after_a_lost_message() -> None:
    install_commit_flush_fix()
    buffer = await _started_buffer()
    try:
        buffer.put(_message(_SlowChannel(handover_s=0.01, fail=True)))
        with pytest.raises(BufferedSendError, match="slow-changelog"):
            await asyncio.wait_for(buffer.flush(), timeout=5)
    finally:
        await buffer.stop()
