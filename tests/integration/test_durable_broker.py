"""``leadscore broker --data-dir``: a broker whose topics, records and offsets survive kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from leadscore.infra.embedded import durable
from leadscore.infra.embedded.durable import durable_services
from leadscore.infra.errors import BinaryNotFoundError
from leadscore.infra.kafka.offsets import fetch_end_offsets

pytestmark = pytest.mark.integration

TOPIC, PARTITIONS, N = "durable.events", 12, 3000


def start(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The command as a user runs it; its process and the KAFKA_BOOTSTRAP it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leadscore", "broker", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()  # blocks until it is ready
    assert line.startswith("KAFKA_BOOTSTRAP=127.0.0.1:"), (line, log.read_text()[-2000:])
    return process, line.removeprefix("KAFKA_BOOTSTRAP=")


async def write(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(TOPIC, str(i).encode(), key=str(i % 97).encode()) for i in range(N)
        ]
        await asyncio.gather(*sent)  # every record acknowledged before the kill
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(TOPIC, 1)])
        await consumer.commit({TopicPartition(TOPIC, 1): OffsetAndMetadata(7, "")})
    finally:
        await consumer.stop()


async def write_until_killed(
    bootstrap: str, process: subprocess.Popen[bytes]
) -> dict[int, tuple[int, int]]:
    """Send records while the broker is killed under the producer: {value: (partition, offset)}
    of those acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=3000)
    await producer.start()
    pending: list[tuple[int, asyncio.Future[Any]]] = []
    try:
        for i in range(N, N + 100_000):
            sent = await producer.send(TOPIC, str(i).encode(), partition=i % PARTITIONS)
            pending.append((i, sent))
            if sum(f.done() for _, f in pending[-400:]) >= 100:  # acks flowing, writes in flight
                os.killpg(process.pid, signal.SIGKILL)
                break
            await asyncio.sleep(0.0005)
        await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)
    return {
        i: (f.result().partition, f.result().offset) for i, f in pending if f.exception() is None
    }


async def read(bootstrap: str) -> tuple[list[int], int | None]:
    """Every record's value, and the group's committed offset on partition 1."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        committed = await consumer.committed(tps[1])
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            values: list[int] = []
            deadline = time.monotonic() + 30
            ends = await fetch_end_offsets(reader, dict.fromkeys(tps, 0))
            while time.monotonic() < deadline:
                batch = await reader.getmany(timeout_ms=500)
                values += [int(r.value) for rs in batch.values() for r in rs]
                if all([await reader.position(tp) >= ends[tp] for tp in tps]):
                    break
        finally:
            await reader.stop()
    finally:
        await consumer.stop()
    return values, committed


def test_topics_records_and_offsets_survive_kill_9_and_the_address_stays(
    s3rver: Path, tmp_path: Path
) -> None:
    data, log = tmp_path / "broker-data", tmp_path / "broker.log"
    process, bootstrap = start(data, log)
    try:
        asyncio.run(write(bootstrap))
        # kill -9 of the command, Tansu and s3rver at once, in the middle of writes
        acked = asyncio.run(write_until_killed(bootstrap, process))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert acked, "nothing was acknowledged before the kill"

    again, same = start(data, log)
    try:
        assert same == bootstrap  # the directory remembers its port
        # Writes first, before anything reads: each goes after everything acknowledged
        # (a restarted broker once began its partitions at offset 0 again, over them).
        for partition in range(PARTITIONS):
            last = max((o for p, o in acked.values() if p == partition), default=-1)
            assert asyncio.run(send_one(bootstrap, partition)) > last, partition
        values, committed = asyncio.run(read(bootstrap))
        assert sorted(v for v in values if 0 <= v < N) == list(range(N))
        assert committed == 7
        assert set(acked) <= set(values), "acknowledged records were lost"
        assert values.count(-1) == PARTITIONS
    finally:
        started = time.monotonic()
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=10) == 0
    assert time.monotonic() - started < 10


async def send_one(bootstrap: str, partition: int) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait(TOPIC, b"-1", partition=partition)
        return int(metadata.offset)
    finally:
        await producer.stop()


def test_the_demo_servers_keep_their_data_and_ports_between_runs(
    s3rver: Path, tmp_path: Path
) -> None:
    with durable_services(tmp_path) as first:
        assert first.kafka_durable and first.redis is not None
        redis.Redis.from_url(first.redis_url).set("kept", "yes")
        asyncio.run(write(first.kafka_bootstrap))
    with durable_services(tmp_path) as second:
        assert (second.kafka_bootstrap, second.redis_url) == (
            first.kafka_bootstrap,
            first.redis_url,
        )
        assert redis.Redis.from_url(second.redis_url).get("kept") == b"yes"
        values, committed = asyncio.run(read(second.kafka_bootstrap))
        assert sorted(values) == list(range(N)) and committed == 7


def test_without_s3rver_neither_demo_server_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker in memory beside a Redis on disk would show leads no worker knows."""

    def missing() -> Path:
        raise BinaryNotFoundError("no s3rver here")

    monkeypatch.setattr(durable, "s3rver_binary", missing)
    with durable_services(tmp_path) as services:
        assert not services.kafka_durable and services.redis is not None
        redis.Redis.from_url(services.redis_url).set("k", "v")
    assert not (tmp_path / "redis").exists() and not (tmp_path / "broker").exists()
