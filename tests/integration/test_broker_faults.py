"""The worker against a broker that dies: durable (ride through) and in memory (stop once, clearly)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from model_cache import ModelCache
from worker_harness import (
    WorkerProcess,
    create_topics,
    send_records,
    wait_until,
    worker_settings,
)

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.servers import EmbeddedKafka
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.redis_store import ScoreStore
from leadscore.settings import Settings
from leadscore.streams.broker_watch import TOPICS_LOST_EXIT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, model_cache: ModelCache) -> Path:
    directory = tmp_path_factory.mktemp("models")
    model_cache.registry(
        directory, leads=800, folds=2, search="none", compare=("ensemble",), seed=0
    )
    return directory


@asynccontextmanager
async def worker_on_a_memory_broker(
    redis_url: str, name_prefix: str, model_dir: Path, log: Path, **overrides: Any
) -> AsyncIterator[tuple[list[EmbeddedKafka], Settings, WorkerProcess]]:
    """A ready worker on an in-memory broker; the brokers started (a test may add one)."""
    brokers = [EmbeddedKafka(port=free_port())]
    brokers[0].start()
    worker = None
    try:
        settings = worker_settings(
            name_prefix, kafka_bootstrap=brokers[0].bootstrap, redis_url=redis_url,
            model_dir=model_dir, **overrides,
        )  # fmt: skip
        await create_topics(settings)
        worker = WorkerProcess(settings, log)
        await worker.wait_ready()
        yield brokers, settings, worker
    finally:
        if worker is not None:
            worker.stop()
        for broker in brokers:
            broker.stop()


async def exited(worker: WorkerProcess, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for the worker's process to end."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(worker.process.wait, timeout_s)


def page_view(lead: str, n: int) -> dict[str, object]:
    return {
        "specversion": "1.0", "id": f"{lead}-{n}", "source": "/test", "type": "lead.page_viewed",
        "subject": lead, "time": "2026-01-05T10:00:00Z",
        "data": {"url": "https://example.com/pricing", "duration_s": 30},
    }  # fmt: skip


async def test_a_broker_that_comes_back_empty_stops_the_worker_once_with_a_reason(
    redis_url: str,
    name_prefix: str,
    model_dir: Path,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    """A broker in memory restarted: the worker says why once and exits 3, no spinning."""
    async with worker_on_a_memory_broker(
        redis_url, name_prefix, model_dir, tmp_path / "worker.log", broker_watch_s=0.5
    ) as (brokers, settings, worker):
        events = [page_view(f"lead-{i % 20}", i) for i in range(200)]
        await send_records(
            settings.kafka_bootstrap,
            [
                (settings.activity_topic, str(e["subject"]).encode(), orjson.dumps(e))
                for e in events
            ],
        )
        store = ScoreStore(
            redis_client, settings.redis_prefix, keyring=Keyring.from_settings(settings)
        )
        await wait_until(
            "the events scored", store.stats, lambda s: s.get("events", 0) >= 200, workers=[worker]
        )
        brokers[0].stop()
        await asyncio.sleep(2)
        brokers.append(EmbeddedKafka(port=brokers[0].port))  # memory storage: empty
        brokers[-1].start()
        await create_topics(settings)  # recreated, empty (as `leadscore topics` or auto-create)
        await exited(worker, 90)
        assert worker.process.poll() == TOPICS_LOST_EXIT, worker.describe()
        log = worker.log_text()
        assert log.count("the broker has lost records this worker had read") == 1, log[-3000:]
        assert "leadscore broker --data-dir" in log


def test_broker_and_redis_killed_under_load_change_no_final_score(
    s3rver: Path, model_dir: Path, tmp_path: Path
) -> None:
    """The short chaos run: the same events with and without faults end with the same scores,
    every malformed record among them a dead letter."""
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "chaos.py"),
            "--events", "1500", "--leads", "120", "--rate", "150",
            "--faults", "broker@0.3,redis@0.55,broker@0.8", "--down", "3", "--quiet", "6",
            "--garbage", "260",
            "--model-dir", str(model_dir), "--workdir", str(tmp_path / "chaos"),
            "--json", str(out),
        ],
        capture_output=True, text=True, timeout=280, cwd=ROOT,
    )  # fmt: skip
    assert out.exists(), run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads(out.read_text())
    faulted = next(r for r in result["runs"] if r["run"] == "faults")
    assert result["ok"], (result, run.stdout[-2000:])
    assert faulted["lost"] == 0 and faulted["worker_exits"] == 0
    # 26 kinds, 10 each; a send retried across a broker kill can land twice: both refused
    assert faulted["dead_letters"] == faulted["garbage_on_topics"] >= faulted["garbage"] == 260
    assert faulted["offline_mismatch"] == 0
    assert not any(result["compare"].values())
    # each fault logged once (then counted), not a line per retry
    assert faulted["worker_log_lines"] < 400, faulted


async def test_the_worker_stops_within_its_deadline_with_the_broker_gone(
    redis_url: str, name_prefix: str, model_dir: Path, tmp_path: Path
) -> None:
    async with worker_on_a_memory_broker(
        redis_url, name_prefix, model_dir, tmp_path / "worker.log", shutdown_timeout_s=4.0
    ) as (brokers, _, worker):
        brokers[0].stop()
        await asyncio.sleep(2)
        began = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        await exited(worker, 30)
        took = time.monotonic() - began
        assert worker.process.poll() is not None and took < 4.0 + 3.0, (took, worker.describe())
        assert "stopping took more than 4 s" in worker.log_text() or took < 4.0
