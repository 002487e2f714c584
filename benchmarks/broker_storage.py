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
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from bench_common import machine

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.binaries import s3rver_binary, tansu_binary
from leadscore.infra.embedded.durable import _LAUNCHER
from leadscore.infra.kafka.offsets import end_offsets

TOPIC, PARTITIONS = "bench", 4


def start_store(
    mode: str, directory: Path
) -> tuple[subprocess.Popen[bytes] | None, dict[str, str]]:
    if mode == "memory":
        return None, {}
    port = free_port()
    binary = s3rver_binary()
    prefix = (
        [shutil.which("node") or "node", str(_LAUNCHER), str(binary.resolve().parent.parent)]
        if mode == "s3rver+launcher"
        else [str(binary)]
    )
    (directory / "objects").mkdir(parents=True)
    store = subprocess.Popen(
        [*prefix, "--directory", str(directory / "objects"), "--address", "127.0.0.1",
         "--port", str(port), "--configure-bucket", "tansu", "--allow-mismatched-signatures",
         "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)
    env = {
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
        "AWS_DEFAULT_REGION": "us-east-1",
    }  # fmt: skip
    return store, env


def start_broker(port: int, mode: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    engine = "memory://tansu/" if mode == "memory" else "s3://tansu/"
    listener = f"tcp://127.0.0.1:{port}"
    broker = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", listener,
         "--advertised-listener-url", listener, "--storage-engine", engine],
        env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1.5)
    return broker


async def measure(mode: str, n: int) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="leadscore-broker-bench-"))
    store, env = start_store(mode, directory)
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_broker(port, mode, env, directory / "tansu.log")
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        began = time.monotonic()
        sent = [
            await producer.send(TOPIC, b"x" * 280, key=str(i % 1000).encode()) for i in range(n)
        ]
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

        broker.send_signal(signal.SIGKILL)
        broker.wait()
        broker = start_broker(port, mode, env, directory / "tansu.log")
        reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id="g", enable_auto_commit=False
        )
        await reader.start()
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        try:
            committed = sum([(await reader.committed(tp)) or 0 for tp in tps])
            back = sum((await end_offsets(reader, tps)).values())
        except Exception:  # the topic is gone (memory)
            committed = back = 0
        await reader.stop()
    finally:
        broker.kill()
        if store is not None:
            store.kill()
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "storage": mode, "produce_per_s": round(produce_rate), "consume_per_s": round(consume_rate),
        "records_back": back, "committed_back": committed, "records": n,
    }  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    for mode in ("memory", "s3rver", "s3rver+launcher"):
        row = await measure(mode, args.records)
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))
