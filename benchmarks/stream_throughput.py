"""End-to-end throughput and latency of the worker, next to a plain-consumer baseline.

One run, on fresh topics of one broker:

1. **Publish** ``--events`` simulated events (unpaced) to the three input topics.
2. **Baseline**: a plain aiokafka consumer reads those topics from start to end and
   does nothing with the records (events/s; twice).
3. **Worker**: ``python -m leadscore worker`` on those topics (its own group, table,
   scores topic and Redis prefix per run), timed from its "[^Worker]: Ready" to Redis
   stats ``events`` == N; once with the default score-change threshold (3) and once
   with 0 (every rescore published and explained). Reported as events/s and as a
   ratio to the baseline. First, the same worker with its processing replaced by
   nothing (``process_batch`` returns an empty result; Faust, the batching, the offset
   commits and the Redis counter write remain): what Faust alone can do here.
4. **Latency**: the threshold-0 worker, caught up, gets live traffic at a fixed rate
   (``--rate``, default 2000 and 500 events/s) for ``--latency-seconds``. Latency of a
   score event = its Kafka timestamp minus the Kafka timestamp of the input record
   named by its ``cause_event_id`` (both producer create-time). Alongside, a plain
   consumer with the worker's ``fetch_max_wait_ms`` reads the same input records: its
   receive time minus create time is the broker's share of the latency.

The worker child runs with a thin wrapper that counts batches (sizes, time in
``process_batch``) and writes the counts to a file twice a second;
``--no-instrument`` runs the bare ``python -m leadscore worker`` instead.

Servers: the embedded Tansu broker and redis-server (started and stopped here), or
``--kafka HOST:PORT`` / ``--redis URL``. The model: the champion of ``--model-dir``
(default ``artifacts/bench/model``; a small one is trained there if it is empty, ~20 s).

Usage::

    .venv/bin/python benchmarks/stream_throughput.py            # ~3 min; or `make bench`
    .venv/bin/python benchmarks/stream_throughput.py --events 100000 --rate 1000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from bench_common import ensure_model, machine

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.processes import spawn_child, stop_child
from leadscore.infra.embedded.servers import embedded_services
from leadscore.infra.kafka.client import client_options, ensure_topics
from leadscore.infra.kafka.offsets import fetch_end_offsets
from leadscore.infra.kafka.publish import publish
from leadscore.infra.launch import settings_env
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

DEFAULT_MODEL_DIR = Path("artifacts/bench/model")
READY_TIMEOUT_S = 120.0
POLL_S = 0.05
#: Simulated events per lead over 30 days is ~20; generate enough leads to have N events.
EVENTS_PER_LEAD_LOW = 12

#: Runs inside the worker child before the CLI: counts batches without changing them, and
#: probes the event loop's responsiveness from a thread (a callback every 20 ms; its delay is
#: how long the loop was busy or the GIL held elsewhere).
WORKER_WRAPPER = r"""
import asyncio, json, os, threading, time
import leadscore.streams.scoring as scoring

path = os.environ["LEADSCORE_BENCH_BATCH_FILE"]
LAG_BOUNDS_MS = (1, 5, 10, 20, 50, 100, 200, 500)
stats = {"batches": 0, "records": 0, "sizes": {}, "process_s": 0.0,
         "first_batch_t": None, "last_batch_end_t": None,
         "lag_hist": {str(b): 0 for b in LAG_BOUNDS_MS + ("inf",)}, "lag_slow": []}

def probe_loop(loop):
    while not loop.is_closed():
        time.sleep(0.02)
        sent = time.perf_counter()
        def arrived(sent=sent):
            lag_ms = 1000 * (time.perf_counter() - sent)
            key = next((str(b) for b in LAG_BOUNDS_MS if lag_ms < b), "inf")
            stats["lag_hist"][key] += 1
            if lag_ms >= 20 and len(stats["lag_slow"]) < 20000:
                stats["lag_slow"].append((round(time.time(), 3), round(lag_ms, 1)))
        try:
            loop.call_soon_threadsafe(arrived)
        except RuntimeError:  # the loop closed
            return

_set_event_loop = asyncio.set_event_loop
def set_event_loop(loop):
    _set_event_loop(loop)
    if loop is not None and not getattr(loop, "_bench_probed", False):
        loop._bench_probed = True
        threading.Thread(target=probe_loop, args=(loop,), daemon=True, name="bench-lag").start()
asyncio.set_event_loop = set_event_loop
_process = scoring.process_batch
if os.environ.get("LEADSCORE_BENCH_NOOP"):  # the framework alone: every batch does nothing
    from leadscore.models.batch.processing import BatchResult
    _process = lambda records, **kwargs: BatchResult()

def process_batch(records, **kwargs):
    t0 = time.time()
    try:
        return _process(records, **kwargs)
    finally:
        stats["process_s"] += time.time() - t0
        stats["last_batch_end_t"] = time.time()
        n = len(records)
        stats["batches"] += 1
        stats["records"] += n
        stats["sizes"][n] = stats["sizes"].get(n, 0) + 1
        if stats["first_batch_t"] is None:
            stats["first_batch_t"] = t0

def dump():
    while True:
        time.sleep(0.5)
        try:
            snapshot = dict(stats, sizes=dict(stats["sizes"]), lag_hist=dict(stats["lag_hist"]),
                            lag_slow=list(stats["lag_slow"]))
        except RuntimeError:  # resized while copied: next time
            continue
        with open(path + ".tmp", "w") as f:
            json.dump(snapshot, f)
        os.replace(path + ".tmp", path)

scoring.process_batch = process_batch

threading.Thread(target=dump, daemon=True, name="bench-stats").start()
import sys
sys.argv = ["leadscore", "worker", "--loglevel", os.environ.get("LEADSCORE_BENCH_LOGLEVEL", "info")]
from leadscore.cli import main
main()
"""


# --- machine, processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux), or ``None``."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, all cores (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


class CpuMeter:
    """CPU use over an interval, in cores (1.0 = one core busy): some processes and the machine.

    ``machine`` counts every process on the box, so other work running at the same time
    shows there (``machine`` minus ours = someone else's).
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.pids["bench"] = os.getpid()
        self.start_cpu: dict[str, float | None] = {}
        self.start_machine: tuple[float, float] | None = None
        self.start_t = 0.0

    def start(self) -> None:
        self.start_t = time.monotonic()
        self.start_cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.start_machine = machine_busy()

    def stop(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.start_t, 1e-9)
        shares = {}
        for name, pid in self.pids.items():
            before, after = self.start_cpu.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                shares[name] = round((after - before) / elapsed, 3)
        end = machine_busy()
        if self.start_machine is not None and end is not None and end[1] > self.start_machine[1]:
            busy = (end[0] - self.start_machine[0]) / (end[1] - self.start_machine[1])
            shares["machine"] = round(busy * (os.cpu_count() or 1), 3)
        return shares


def worker_env(settings: Settings, batch_file: Path) -> dict[str, str]:
    """The environment that makes ``Settings()`` in the child equal ``settings``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LEADSCORE_") and key not in ("KAFKA_BOOTSTRAP", "REDIS_URL")
    }
    env.update(settings_env(settings))
    env["PYTHONUNBUFFERED"] = "1"
    env["LEADSCORE_BENCH_BATCH_FILE"] = str(batch_file)
    return env


class Worker:
    """One worker child process and its log."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        name: str,
        *,
        instrument: bool,
        loglevel: str,
        fetch_wait_ms: int | None = None,
        noop: bool = False,
    ) -> None:
        self.settings = settings
        self.log_path = log_dir / f"{name}.log"
        self.batch_file = log_dir / f"{name}.batches.json"
        env = worker_env(settings, self.batch_file)
        env["LEADSCORE_BENCH_LOGLEVEL"] = loglevel
        if noop:
            env["LEADSCORE_BENCH_NOOP"] = "1"
        if fetch_wait_ms is not None:
            env["LEADSCORE_FETCH_MAX_WAIT_MS"] = str(fetch_wait_ms)
        argv = (
            [sys.executable, "-c", WORKER_WRAPPER]
            if instrument
            else [sys.executable, "-m", "leadscore", "worker", "--loglevel", loglevel]
        )
        self.started = time.monotonic()
        self.process: subprocess.Popen[bytes] = spawn_child(argv, self.log_path, env, Path.cwd())
        self._scan_from = 0
        self._ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(
                f"the worker exited with code {self.process.returncode}; log {self.log_path}:\n"
                + self.tail()
            )

    def is_ready(self) -> bool:
        if not self._ready:
            with self.log_path.open("rb") as f:
                f.seek(self._scan_from)
                chunk = f.read()
            self._ready = b"[^Worker]: Ready" in chunk
            self._scan_from += max(len(chunk) - 32, 0)  # overlap: the marker may be cut
        return self._ready

    async def wait_ready(self) -> float:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.is_ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"worker not ready after {READY_TIMEOUT_S:.0f} s; log:\n{self.tail()}"
                )
            await asyncio.sleep(POLL_S)
        return time.monotonic()

    def batch_stats(self) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.batch_file.read_text())
        return None

    def warnings(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line]

    def stop(self) -> None:
        stop_child(self.process, grace_s=15.0)


def summarize_batches(
    before: dict[str, Any] | None, after: dict[str, Any] | None, batch_size: int, since: float
) -> dict[str, Any]:
    """Batch counts and sizes, and event-loop delays, between two snapshots of the worker's batch file."""
    if not after:
        return {}
    before = before or {
        "batches": 0,
        "records": 0,
        "sizes": {},
        "process_s": 0.0,
        "lag_hist": {},
    }
    lag_hist = {
        k: v - before.get("lag_hist", {}).get(k, 0) for k, v in after.get("lag_hist", {}).items()
    }
    probes = sum(lag_hist.values())
    slow = [lag for t, lag in after.get("lag_slow", []) if t > since]
    sizes = {int(k): v - before["sizes"].get(k, 0) for k, v in after["sizes"].items()}
    sizes = {k: v for k, v in sizes.items() if v > 0}
    batches = after["batches"] - before["batches"]
    records = after["records"] - before["records"]
    flat = sorted(itertools.chain.from_iterable([k] * v for k, v in sizes.items()))
    return {
        "batches": batches,
        "records": records,
        "mean_size": round(records / batches, 1) if batches else 0.0,
        "median_size": statistics.median(flat) if flat else 0,
        "full_batches": sizes.get(batch_size, 0),
        "records_in_full_batches": round(sizes.get(batch_size, 0) * batch_size / records, 3)
        if records
        else 0.0,
        "process_s": round(after["process_s"] - before["process_s"], 3),
        # A callback scheduled on the worker's loop every 20 ms: how late it ran.
        "loop_probes": probes,
        "loop_late_over_20ms": round(
            sum(v for k, v in lag_hist.items() if k not in ("1", "5", "10", "20")) / probes, 3
        )
        if probes
        else None,
        "loop_late_over_100ms": round(
            sum(v for k, v in lag_hist.items() if k in ("200", "500", "inf")) / probes, 3
        )
        if probes
        else None,
        "loop_max_late_ms": max(slow) if slow else "<20",
    }


# --- traffic -------------------------------------------------------------------------------------


def simulated_events(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` events of a 30-day simulated history that ends now (the worker refuses future times)."""
    leads = max(100, n // EVENTS_PER_LEAD_LOW)
    events = list(
        itertools.islice(Simulator(SimConfig(n_leads=leads, span_days=30.0, seed=seed)).events(), n)
    )
    if len(events) < n:
        raise SystemExit(f"the simulation gave {len(events)} events, fewer than {n}")
    return events


def topic_settings(base: Settings, prefix: str, **overrides: Any) -> Settings:
    values = {
        "activity_topic": f"{prefix}leads.activity.v1",
        "profile_topic": f"{prefix}leads.profile.v1",
        "outcome_topic": f"{prefix}leads.outcome.v1",
        "scores_topic": f"{prefix}leads.scores.v1",
        "dead_letter_topic": f"{prefix}leads.dead-letter.v1",
        "model_events_topic": f"{prefix}models.events.v1",
        "erasures_topic": f"{prefix}leads.erasures.v1",
        **overrides,
    }
    return base.model_copy(update=values)


def worker_settings(inputs: Settings, prefix: str, threshold: int) -> Settings:
    """A worker run on ``inputs``' input topics, with its own group, table, outputs and Redis keys."""
    return inputs.model_copy(
        update={
            "app_id": f"{prefix}worker",
            "redis_prefix": f"{prefix}",
            "scores_topic": f"{prefix}leads.scores.v1",
            "dead_letter_topic": f"{prefix}leads.dead-letter.v1",
            "model_events_topic": f"{prefix}models.events.v1",
            "score_change_threshold": threshold,
            "web_port": free_port(),
        }
    )


def partitions_of(settings: Settings, topics: Iterable[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]


async def end_offsets(
    settings: Settings, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Real end offsets (from Fetch: Tansu's ListOffsets answer is short)."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        found = await fetch_end_offsets(consumer, {tp: 0 for tp in tps})
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in found.items()}
    finally:
        await consumer.stop()


async def read_range(
    settings: Settings,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    timeout_s: float = 120.0,
) -> list[Any]:
    """Every record from ``start`` up to ``end`` (exclusive) of each partition."""
    wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = set(wanted)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"could not read {sorted(map(str, remaining))} to their end in {timeout_s} s"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for tp, rows in batch.items():
                for row in rows:
                    if row.offset < end[tp]:
                        records.append(row)
                if rows and rows[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return records


# --- measurements ---------------------------------------------------------------------------------


async def baseline(settings: Settings, n: int) -> dict[str, Any]:
    """A plain consumer reads the input topics start to end, no processing: events/s."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = partitions_of(settings, settings.input_topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        t0 = time.perf_counter()
        deadline = time.monotonic() + 120.0
        while count < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"the baseline consumer read only {count} of {n} events in 120 s")
            batch = await consumer.getmany(timeout_ms=200)
            count += sum(len(rows) for rows in batch.values())
        elapsed = time.perf_counter() - t0
    finally:
        await consumer.stop()
    return {"events": count, "seconds": round(elapsed, 3), "events_per_s": round(count / elapsed)}


@dataclass
class ThroughputResult:
    threshold: int | None  # None: the no-op run
    events: int
    startup_s: float
    events_at_ready: int
    seconds: float
    events_per_s: float
    steady_events_per_s: float
    first_event_to_done_s: float
    scores: int
    dead_letters: int
    cpu: dict[str, float]
    batches: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


async def stats_of(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    raw = await client.hgetall(f"{prefix}stats")
    return {k.decode(): int(v) for k, v in raw.items()}


async def worker_throughput(
    worker: Worker,
    client: aioredis.Redis,
    n: int,
    threshold: int | None,
    cpu: CpuMeter,
    timeout_s: float,
) -> ThroughputResult:
    """From "ready" to Redis stats ``events`` == n."""
    prefix = worker.settings.redis_prefix
    # Faust may fetch a little before it logs "Ready": watch the counter from the start.
    samples: list[tuple[float, int]] = []
    first_event_t = None
    while not worker.is_ready():
        worker.check_alive()
        if time.monotonic() - worker.started > READY_TIMEOUT_S:
            raise SystemExit(
                f"worker not ready after {READY_TIMEOUT_S:.0f} s; log:\n{worker.tail()}"
            )
        events = (await stats_of(client, prefix)).get("events", 0)
        if events and first_event_t is None:
            first_event_t = time.monotonic()
        await asyncio.sleep(POLL_S)
    ready_t = time.monotonic()
    phase_start = time.time()
    cpu.start()
    batches_before = worker.batch_stats()
    at_ready = (await stats_of(client, prefix)).get("events", 0)
    deadline = ready_t + timeout_s
    while True:
        stats = await stats_of(client, prefix)
        now = time.monotonic()
        events = stats.get("events", 0)
        samples.append((now, events))
        if events and first_event_t is None:
            first_event_t = now
        if events >= n:
            break
        worker.check_alive()
        if now > deadline:
            raise SystemExit(
                f"the worker processed {events} of {n} events in {timeout_s:.0f} s; "
                f"log {worker.log_path}:\n{worker.tail()}"
            )
        await asyncio.sleep(POLL_S)
    done_t = samples[-1][0]
    shares = cpu.stop()
    await asyncio.sleep(0.6)  # let the batch file catch up
    elapsed = done_t - ready_t
    return ThroughputResult(
        threshold=threshold,
        events=n,
        startup_s=round(ready_t - worker.started, 1),
        events_at_ready=at_ready,
        seconds=round(elapsed, 2),
        events_per_s=round((n - at_ready) / elapsed) if elapsed > 0 else 0.0,
        steady_events_per_s=round(_steady_rate(samples, n)),
        first_event_to_done_s=round(done_t - (first_event_t or ready_t), 2),
        scores=stats.get("scores", 0),
        dead_letters=stats.get("dead_letters", 0),
        cpu=shares,
        batches=summarize_batches(
            batches_before, worker.batch_stats(), worker.settings.batch_size, phase_start
        ),
        warnings=worker.warnings()[-10:],
    )


def _steady_rate(samples: list[tuple[float, int]], n: int) -> float:
    """events/s between 10 % and 90 % of the run (no start-up, no tail)."""
    lo = next(((t, e) for t, e in samples if e >= 0.1 * n), None)
    hi = next(((t, e) for t, e in samples if e >= 0.9 * n), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return 0.0
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


async def delivery_latency(
    settings: Settings,
    start: dict[TopicPartition, int],
    fetch_wait_ms: int,
    out: list[float],
    stop: asyncio.Event,
) -> None:
    """The latency baseline: a plain consumer on the worker's input, receive time minus create time."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=fetch_wait_ms,
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now_ms = time.time() * 1000.0
            for rows in batch.values():
                out.extend(now_ms - row.timestamp for row in rows)
    finally:
        await consumer.stop()


def _percentiles(values: list[float], prefix: str = "") -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        f"{prefix}p50_ms": round(q[49], 1),
        f"{prefix}p95_ms": round(q[94], 1),
        f"{prefix}p99_ms": round(q[98], 1),
        f"{prefix}max_ms": round(max(values), 1),
    }


async def latency(
    worker: Worker,
    client: aioredis.Redis,
    rate: float,
    duration_s: float,
    seed: int,
    run: str,
    cpu: CpuMeter,
    baseline_fetch_wait_ms: int,
) -> dict[str, Any]:
    """Publish at ``rate`` for ``duration_s``; score timestamp minus cause timestamp, per score event.

    Alongside, a plain consumer reads the same input records (``fetch_max_wait_ms`` as given,
    Faust's 1500 by default) and measures when they reach a client at all.
    """
    settings = worker.settings
    input_tps = partitions_of(settings, settings.input_topics)
    score_tps = partitions_of(settings, [settings.scores_topic])
    inputs_start = await end_offsets(settings, input_tps)
    scores_start = await end_offsets(settings, score_tps)
    prefix = settings.redis_prefix
    events_before = (await stats_of(client, prefix)).get("events", 0)
    batches_before = worker.batch_stats()
    phase_start = time.time()
    live = Simulator(SimConfig(n_leads=2000, span_days=30.0, seed=seed)).live_events(run_id=run)
    delivered: list[float] = []
    stop_delivery = asyncio.Event()
    delivery = asyncio.create_task(
        delivery_latency(settings, inputs_start, baseline_fetch_wait_ms, delivered, stop_delivery)
    )
    await asyncio.sleep(1.0)  # let it connect and issue its first fetch
    cpu.start()
    published = await publish(live, settings, rate_per_s=rate, duration_s=duration_s)
    publish_end = time.monotonic()
    # Wait for the worker to get through everything published.
    target = events_before + published.sent
    deadline = publish_end + max(120.0, 4 * duration_s)
    while (events := (await stats_of(client, prefix)).get("events", 0)) < target:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the worker did not catch up: {events - events_before} of {published.sent} "
                f"events {deadline - publish_end:.0f} s after the publisher stopped"
            )
        await asyncio.sleep(POLL_S)
    drain_s = time.monotonic() - publish_end
    shares = cpu.stop()
    stop_delivery.set()
    await delivery
    await asyncio.sleep(0.6)
    batches = summarize_batches(
        batches_before, worker.batch_stats(), settings.batch_size, phase_start
    )
    await asyncio.sleep(0.5)  # the last score sends are flushed before the commit; be sure
    inputs = await read_range(settings, inputs_start, await end_offsets(settings, input_tps))
    scores = await read_range(settings, scores_start, await end_offsets(settings, score_tps))
    sent_at = {orjson.loads(r.value)["id"]: r.timestamp for r in inputs}
    rows = []
    for r in scores:
        cause = orjson.loads(r.value)["cause_event_id"]
        if cause in sent_at:
            rows.append((sent_at[cause], r.timestamp - sent_at[cause]))
    rows.sort()
    lat = [ms for _, ms in rows]
    result: dict[str, Any] = {
        "rate": rate,
        "achieved_rate": round(published.rate_per_s),
        "published": published.sent,
        "score_events": len(scores),
        "matched": len(lat),
        "drain_after_publish_s": round(drain_s, 2),
        "cpu": shares,
        "batches": batches,
    }
    result["consumer_fetch_wait_ms"] = baseline_fetch_wait_ms
    result["consumer_received"] = len(delivered)
    result.update(_percentiles(delivered, "consumer_"))
    if lat:
        result.update(
            _percentiles([float(v) for v in lat]), mean_ms=round(statistics.fmean(lat), 1)
        )
        # Is the worker keeping up? Compare the first and last fifth of the run.
        fifth = max(1, len(lat) // 5)
        result["p50_first_fifth_ms"] = statistics.median(lat[:fifth])
        result["p50_last_fifth_ms"] = statistics.median(lat[-fifth:])
    return result


# --- main -----------------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, kafka: str, redis_url: str, broker_pid: int | None, log_dir: Path
) -> dict[str, Any]:
    run_id = f"bench-{secrets.token_hex(3)}"
    base = Settings(
        kafka_bootstrap=kafka,
        redis_url=redis_url,
        model_dir=args.model_dir,
        topic_partitions=args.partitions,
        web_port=free_port(),
    )
    inputs = topic_settings(base, f"{run_id}.")
    await ensure_topics(inputs)
    results: dict[str, Any] = {
        "run_id": run_id,
        "events": args.events,
        "partitions": args.partitions,
        "batch_size": base.batch_size,
        "log_dir": str(log_dir),
        "fetch_wait_ms": args.fetch_wait_ms
        if args.fetch_wait_ms is not None
        else base.fetch_max_wait_ms,
        "instrumented": not args.no_instrument,
    }

    t0 = time.perf_counter()
    events = simulated_events(args.events, args.seed)
    generated_s = time.perf_counter() - t0
    pub = await publish(events, inputs, rate_per_s=None)
    del events
    results["publish"] = {
        "events": pub.sent,
        "generate_s": round(generated_s, 2),
        "publish_s": round(pub.elapsed_s, 2),
        "publish_events_per_s": round(pub.rate_per_s),
        "by_topic": pub.by_topic,
    }
    print(
        f"published {pub.sent:,} events ({pub.by_topic}) in {pub.elapsed_s:.1f} s "
        f"({pub.rate_per_s:,.0f}/s) to {args.partitions} partitions each; generating took {generated_s:.1f} s"
    )

    results["baseline"] = []
    for i in range(args.baseline_runs):
        b = await baseline(inputs, pub.sent)
        results["baseline"].append(b)
        print(
            f"baseline consumer run {i + 1}: {b['events']:,} events in {b['seconds']:.2f} s = {b['events_per_s']:,}/s"
        )
    best_baseline = max(b["events_per_s"] for b in results["baseline"])

    client = aioredis.Redis.from_url(redis_url)
    results["worker"] = []
    latency_worker: Worker | None = None
    try:
        runs: list[int | None] = [int(t) for t in args.thresholds.split(",")]
        if not args.no_noop:
            runs.insert(0, None)  # None: the Faust no-op worker
        for i, threshold in enumerate(runs):
            name = f"worker-t{threshold}-{i}" if threshold is not None else f"worker-noop-{i}"
            settings = worker_settings(inputs, f"{run_id}.{name}.", threshold or 0)
            worker = Worker(
                settings,
                log_dir,
                name,
                instrument=not args.no_instrument or threshold is None,
                loglevel=args.worker_loglevel,
                fetch_wait_ms=args.fetch_wait_ms,
                noop=threshold is None,
            )
            keep = args.latency_seconds > 0 and threshold == 0 and latency_worker is None
            try:
                cpu = CpuMeter({"worker": worker.pid, "broker": broker_pid})
                res = await worker_throughput(
                    worker, client, pub.sent, threshold, cpu, args.timeout
                )
            except BaseException:
                worker.stop()
                raise
            if keep:
                latency_worker = worker
            else:
                worker.stop()
            entry = res.__dict__ | {"ratio_to_baseline": round(res.events_per_s / best_baseline, 4)}
            results["worker"].append(entry)
            b = res.batches
            print(
                f"worker {_label(threshold)}: ready after {res.startup_s:.0f} s, {res.events:,} events in "
                f"{res.seconds:.1f} s = {res.events_per_s:,.0f}/s (steady {res.steady_events_per_s:,.0f}/s), "
                f"{res.scores:,} scores; CPU {res.cpu}; "
                + (
                    f"{b['batches']} batches, mean size {b['mean_size']}, "
                    f"process {b['process_s']} s; event loop late >20 ms in "
                    f"{b['loop_late_over_20ms']:.0%} of probes, max {b['loop_max_late_ms']} ms"
                    if b
                    else ""
                )
            )
        if args.latency_seconds > 0:
            if (
                latency_worker is None
            ):  # no threshold-0 throughput run: start one for the latency part
                settings = worker_settings(inputs, f"{run_id}.worker-lat.", 0)
                latency_worker = Worker(
                    settings,
                    log_dir,
                    "worker-lat",
                    instrument=not args.no_instrument,
                    loglevel=args.worker_loglevel,
                    fetch_wait_ms=args.fetch_wait_ms,
                )
                await worker_throughput(
                    latency_worker,
                    client,
                    pub.sent,
                    0,
                    CpuMeter({"worker": latency_worker.pid}),
                    args.timeout,
                )
            results["latency"] = []
            for i, rate in enumerate(float(r) for r in args.rate.split(",")):
                cpu = CpuMeter({"worker": latency_worker.pid, "broker": broker_pid})
                lat = await latency(
                    latency_worker,
                    client,
                    rate,
                    args.latency_seconds,
                    args.seed + 1,
                    f"{run_id}-live{i}",
                    cpu,
                    args.fetch_wait_ms
                    if args.fetch_wait_ms is not None
                    else base.fetch_max_wait_ms,
                )
                results["latency"].append(lat)
                print(
                    f"latency at {rate:,.0f}/s: {lat.get('matched', 0):,} of {lat['published']:,} events matched; "
                    f"p50 {lat.get('p50_ms', float('nan')):.0f} ms, p95 {lat.get('p95_ms', float('nan')):.0f}, "
                    f"p99 {lat.get('p99_ms', float('nan')):.0f}, max {lat.get('max_ms', float('nan')):.0f}; "
                    f"caught up {lat['drain_after_publish_s']:.1f} s after the publisher stopped; "
                    f"plain consumer (fetch wait {lat['consumer_fetch_wait_ms']} ms): "
                    f"p50 {lat.get('consumer_p50_ms', float('nan')):.0f} ms, "
                    f"p95 {lat.get('consumer_p95_ms', float('nan')):.0f}, "
                    f"max {lat.get('consumer_max_ms', float('nan')):.0f}; "
                    f"CPU {lat['cpu']}; batches {lat['batches']}"
                )
    finally:
        if latency_worker is not None:
            latency_worker.stop()
        await client.aclose()
    return results


def _label(threshold: int | None) -> str:
    return f"threshold {threshold}" if threshold is not None else "no-op (Faust alone)"


def _cores(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def print_table(info: dict[str, Any], results: dict[str, Any]) -> None:
    best = max(b["events_per_s"] for b in results["baseline"])
    print()
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, Python {info['python']}, "
        f"load avg at start {info['loadavg_1m_at_start']}"
    )
    print(
        f"{results['events']:,} simulated events, {results['partitions']} partitions per input topic, "
        f"batch size {results['batch_size']}; CPU in cores busy (machine: all processes on the box)"
    )
    print()
    noop = next((w["events_per_s"] for w in results["worker"] if w["threshold"] is None), None)
    print(
        f"{'throughput':<32} {'events/s':>9} {'vs baseline':>11} {'vs no-op':>8} {'worker CPU':>10} "
        f"{'machine':>8} {'mean batch':>10}"
    )
    for i, b in enumerate(results["baseline"]):
        print(f"{'plain aiokafka consumer, run ' + str(i + 1):<32} {b['events_per_s']:>9,}")
    for w in results["worker"]:
        label = f"worker, {_label(w['threshold'])}"
        mean = w["batches"].get("mean_size", "-") if w["batches"] else "-"
        vs_noop = f"{w['events_per_s'] / noop:.3f}" if noop else "-"
        print(
            f"{label:<32} {w['events_per_s']:>9,.0f} {w['events_per_s'] / best:>11.4f} {vs_noop:>8} "
            f"{_cores(w['cpu'].get('worker')):>10} {_cores(w['cpu'].get('machine')):>8} {mean!s:>10}"
        )
    if results.get("latency"):
        print()
        print(
            f"{'latency, threshold 0':<20} {'sent':>7} {'matched':>8} {'p50 ms':>7} {'p95':>6} {'p99':>6} "
            f"{'max':>6} {'catch-up s':>10} {'worker CPU':>10} {'machine':>8} {'consumer p50/p95':>17}"
        )
        for lat in results["latency"]:
            consumer = f"{lat.get('consumer_p50_ms', 0):.0f}/{lat.get('consumer_p95_ms', 0):.0f}"
            print(
                f"{lat['rate']:>9,.0f} events/s {lat['published']:>8,} {lat.get('matched', 0):>8,} "
                f"{lat.get('p50_ms', 0):>7.0f} {lat.get('p95_ms', 0):>6.0f} {lat.get('p99_ms', 0):>6.0f} "
                f"{lat.get('max_ms', 0):>6.0f} {lat['drain_after_publish_s']:>10.1f} "
                f"{_cores(lat['cpu'].get('worker')):>10} {_cores(lat['cpu'].get('machine')):>8} {consumer:>17}"
            )
        print(
            "(consumer: a plain aiokafka consumer reading the same input records, with the worker's "
            "fetch_max_wait_ms: when records can reach any client)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=60_000, help="events to pre-publish (default 60,000)"
    )
    parser.add_argument(
        "--thresholds", default="3,0", help="score-change thresholds of the worker runs"
    )
    parser.add_argument(
        "--rate", default="2000,500", help="events/s of the latency runs, comma-separated"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20.0, help="length of each latency run (0: none)"
    )
    parser.add_argument("--baseline-runs", type=int, default=2)
    parser.add_argument(
        "--partitions",
        type=int,
        default=Settings().topic_partitions,
        help="partitions per topic (default: the worker's default)",
    )
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--kafka", help="bootstrap servers of a broker to use (default: start the embedded one)"
    )
    parser.add_argument("--redis", help="URL of a Redis to use (default: start an embedded one)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up on a worker run after this many s"
    )
    parser.add_argument(
        "--no-instrument", action="store_true", help="run the bare worker (no batch counts)"
    )
    parser.add_argument(
        "--no-noop",
        action="store_true",
        help="skip the Faust no-op run (the worker with processing replaced by nothing)",
    )
    parser.add_argument("--worker-loglevel", default="info")
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        help="the worker's LEADSCORE_FETCH_MAX_WAIT_MS (default: the setting's default, "
        "100; Faust alone would use 1500) and the baseline consumer's",
    )
    parser.add_argument(
        "--log-dir", type=Path, help="keep the worker logs here (default: a temp dir)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    info = machine()
    version = ensure_model(args.model_dir)
    print(f"machine: {info['cores']} cores, {info['cpu']}; model {version} from {args.model_dir}")
    with contextlib.ExitStack() as stack:
        log_dir = args.log_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="leadscore-bench-"))
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        services = stack.enter_context(embedded_services(args.kafka, args.redis))
        broker_pid = services.kafka.pid if services.kafka is not None else None
        results = asyncio.run(
            run(args, services.kafka_bootstrap, services.redis_url, broker_pid, log_dir)
        )
    results["machine"] = info
    results["model_version"] = version
    print_table(info, results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
