"""``leadscore broker --data-dir``: a broker whose topics, records and offsets survive kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from leadscore.infra.embedded.binaries import s3rver_binary
from leadscore.infra.errors import BinaryNotFoundError

pytestmark = pytest.mark.integration

TOPIC, PARTITIONS, N = "durable.events", 3, 3000


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
            while len(values) < N and time.monotonic() < deadline:
                batch = await reader.getmany(timeout_ms=500)
                values += [int(r.value) for rs in batch.values() for r in rs]
        finally:
            await reader.stop()
    finally:
        await consumer.stop()
    return values, committed


def test_topics_records_and_offsets_survive_kill_9_and_the_address_stays(tmp_path: Path) -> None:
    try:
        s3rver_binary()
    except BinaryNotFoundError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    data, log = tmp_path / "broker-data", tmp_path / "broker.log"
    process, bootstrap = start(data, log)
    try:
        asyncio.run(write(bootstrap))
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the command, Tansu and s3rver: no goodbye
        process.wait(timeout=10)

    again, same = start(data, log)
    try:
        assert same == bootstrap  # the directory remembers its port
        values, committed = asyncio.run(read(bootstrap))
        assert sorted(values) == list(range(N))
        assert committed == 7
    finally:
        started = time.monotonic()
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
