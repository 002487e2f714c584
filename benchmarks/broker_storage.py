"""The embedded broker's storage: produce and consume rates, and what survives kill -9.

Three Tansu brokers in one run, each on its own loopback port and temporary directory:
in memory; on plain s3rver; on s3rver through leadscore's crash-safe launcher (what
``leadscore broker --data-dir`` runs). For each: aiokafka produces ``--records``
records of 280 bytes to 4 partitions (acks=all, linger 5 ms) and a group consumes them
and commits; then the broker (Tansu only) gets SIGKILL, starts again on the same
storage, and a reader counts the records and the committed offsets that came back.

Usage::

    .venv/bin/python benchmarks/broker_storage.py              # ~1 min
    .venv/bin/python benchmarks/broker_storage.py --records 50000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from bench_common import machine

from leadscore.infra.embedded.durable import DurableKafka
from leadscore.infra.embedded.servers import EmbeddedKafka
from leadscore.infra.kafka.offsets import end_offsets

TOPIC, PARTITIONS = "bench", 4


async def measure(mode: str, n: int) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="leadscore-broker-bench-"))
    server: EmbeddedKafka | DurableKafka = (
        EmbeddedKafka(workdir=directory)
        if mode == "memory"
        else DurableKafka(directory, crash_safe=mode == "s3rver+launcher")
    )
    try:
        with server:
            kafka = server if isinstance(server, EmbeddedKafka) else server.kafka
            assert kafka is not None
            produce_rate, consume_rate = await produce_and_consume(kafka.bootstrap, n)
            os.kill(kafka.pid or 0, signal.SIGKILL)  # the broker only; the store lives on
            kafka.stop()
            kafka.start()  # on the same storage
            back, committed = await what_came_back(kafka.bootstrap)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "storage": mode, "produce_per_s": round(produce_rate), "consume_per_s": round(consume_rate),
        "records_back": back, "committed_back": committed, "records": n,
    }  # fmt: skip


async def produce_and_consume(bootstrap: str, n: int) -> tuple[float, float]:
    """Records/s produced (acks=all) and consumed by a group that then commits."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    began = time.monotonic()
    sent = [await producer.send(TOPIC, b"x" * 280, key=str(i % 1000).encode()) for i in range(n)]
    await asyncio.gather(*sent)
    produce_rate = n / (time.monotonic() - began)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id="g", auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    got, began = 0, time.monotonic()
    while got < n:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        got += sum(len(records) for records in batch.values())
    consume_rate = got / (time.monotonic() - began)
    await consumer.commit()
    await consumer.stop()
    return produce_rate, consume_rate


async def what_came_back(bootstrap: str) -> tuple[int, int]:
    """Records on the topic and the group's committed offsets, summed (0 if it is gone)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False)
    await reader.start()
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    try:
        committed = sum([(await reader.committed(tp)) or 0 for tp in tps])
        back = sum((await end_offsets(reader, tps)).values())
    except Exception:  # the topic is gone (memory)
        committed = back = 0
    finally:
        await reader.stop()
    return back, committed


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    for mode in ("memory", "s3rver", "s3rver+launcher"):
        row = await measure(mode, args.records)
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))
