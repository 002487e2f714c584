"""Faults under load: the worker against a broker and a Redis that are killed and come back.

Drives the commands an operator runs, each as its own process: ``leadscore broker
--data-dir``, ``leadscore redis --data-dir`` and ``leadscore worker``, on fresh data
directories. The same simulated events (``--events``, over ``--leads`` leads, in event-time
order) are published twice, at ``--rate`` events/s, by a producer that retries until the
broker acknowledges (acks=all), as a real one does:

1. **Fault-free**: nothing is killed.
2. **Faults**: while the events flow, at the points of the schedule (``--faults``, e.g.
   ``broker@0.25,redis@0.45,broker@0.65``: which server, at which fraction of the events
   published), the server's command and its children get SIGKILL, stay down ``--down``
   seconds, and the same command on the same directory starts them again. ``worker@F``
   kills the worker instead (SIGKILL), started again by this script as a supervisor would.
   ``receiver@F`` takes the webhook receiver (every run has one, subscribed to every score
   change) down for ``--receiver-down`` seconds while the rest goes on. ``swap@F`` promotes another model (``leadscore models promote``; a second one is trained
   the first time) and kills the worker 0.3 s later, while it loads the model. ``--garbage
   N`` spreads N malformed records of 26 kinds among the events of this run.

Then it checks what an operator would: every published event is on its topic (nothing
lost), every lead's final score (Redis, and the last score event of the lead on the scores
topic) equals the fault-free run's (not checked after a swap: there the final scores
depend on where the swap fell), every lead's final score is what its model gives for all
the lead's events computed here offline, every malformed record is a dead letter,
repeated score ids carry byte-identical records, and the worker never exited (unless killed). It reports, per fault: time until the worker
scored again; overall: events in, leads scored, lost, repeated score records, worker log
lines; as a table (stdout) and ``--json``.

Usage::

    .venv/bin/python benchmarks/chaos.py                       # 12,000 events, ~4 min
    .venv/bin/python benchmarks/chaos.py --events 3000 --faults broker@0.3,redis@0.6
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from bench_common import ensure_model, machine

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.processes import child_setup, spawn_child
from leadscore.infra.kafka.offsets import fetch_end_offsets
from leadscore.infra.kafka.publish import topic_router
from leadscore.infra.launch import READY_LINE, settings_env
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.scorer import load_scorer
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_vector
from leadscore.models.registry.store import ModelRegistry
from leadscore.schemas.events import lead_event_adapter
from leadscore.schemas.webhooks import WebhookSubscription
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

_SIM_START = datetime(2025, 1, 1, tzinfo=UTC)
#: Fields of a lead's latest score that must equal the fault-free run's.
SAME = ("lead_id", "score", "grade", "probability", "model_version")


@dataclass
class Fault:
    target: str  # broker | redis | worker
    at: float  # fraction of the events published
    killed_at: float = 0.0
    back_at: float = 0.0
    scoring_again_s: float | None = None  # from the restart to the first new score


@dataclass
class RunResult:
    name: str
    published: int = 0
    publish_retries: int = 0
    on_topics: int = 0
    lost: int = 0
    leads: int = 0
    leads_scored: int = 0
    score_records: int = 0
    repeated_score_ids: int = 0
    repeated_ids_differing: int = 0
    worker_exits: int = 0
    worker_log_lines: int = 0
    garbage: int = 0
    dead_letters: int = 0
    dead_letters_repeated: int = 0
    garbage_on_topics: int = 0
    offline_mismatch: int = 0
    webhooks_expected: int = 0
    webhooks_missing: int = 0
    webhooks_repeated: int = 0
    webhooks_done_s: float = 0.0
    by_version: dict[str, int] = field(default_factory=dict)
    settle_s: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    topic_latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    dedup_latest: dict[str, dict[str, Any]] = field(default_factory=dict)


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def simulated(n_events: int, n_leads: int, seed: int) -> list[dict[str, Any]]:
    config = SimConfig(n_leads=n_leads, span_days=30, seed=seed, start=_SIM_START)
    events = []
    for event in Simulator(config).events():
        events.append(event)
        if len(events) == n_events:
            break
    return events


def garbage(n: int, lead: str = "chaos-lead") -> list[tuple[str, bytes | None, bytes | None]]:
    """``n`` malformed records of 26 kinds, as (topic kind, key, value), none of them usable."""
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    good = {
        "specversion": "1.0", "source": "chaos", "type": "lead.page_viewed",
        "time": "2025-01-02T10:00:00Z", "subject": lead,
        "data": {"url": "/pricing", "duration_s": 12},
    }  # fmt: skip

    def ev(i: int, **changes: Any) -> bytes:  # ``name=...`` leaves the attribute out
        event = {**good, "id": f"garbage-{i}", **changes}
        return orjson.dumps({k: v for k, v in event.items() if v is not ...})

    key = lead.encode()
    kinds: list[Any] = [
        lambda i: ("activity", key, b"this is not json"),
        lambda i: ("activity", key, b'{"specversion": "1.0", "id": "x"'),
        lambda i: ("activity", key, b"\xc3\x28\xa0\xa1"),
        lambda i: ("activity", key, b""),
        lambda i: ("activity", key, None),
        lambda i: ("activity", key, b"[1, 2, 3]"),
        lambda i: ("activity", key, b'"a string"'),
        lambda i: ("activity", key, ev(i, type="lead.teleported")),
        lambda i: ("activity", key, ev(i, type=...)),
        lambda i: ("activity", key, ev(i, subject=...)),
        lambda i: ("activity", key, ev(i, subject="lead\u0001x")),
        lambda i: ("activity", key, ev(i, id=...)),
        lambda i: ("activity", key, ev(i, id="x" * 201)),
        lambda i: ("activity", key, ev(i, specversion="0.3")),
        lambda i: ("activity", key, ev(i, time="2026-01-01T10:00:00")),
        lambda i: ("activity", key, ev(i, time="yesterday")),
        lambda i: ("activity", key, ev(i, data={"url": "/x", "duration_s": -5})),
        lambda i: ("activity", key, ev(i, data="not an object")),
        lambda i: ("activity", key, ev(i, data={"duration_s": 3})),
        lambda i: ("profile", key, ev(i, type="lead.profile_updated", data={"country": "USA"})),
        lambda i: ("activity", key, ev(i, type="lead.profile_updated", data={})),
        lambda i: ("profile", key, ev(i)),
        lambda i: ("activity", key, ev(i, type="lead.converted", data={})),
        lambda i: ("activity", key, ev(i, time=future)),
        lambda i: ("activity", key, ev(i, data={"url": "/" + "u" * 70_000})),
        lambda i: ("activity", None, b"{broken"),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


class Receiver:
    """A webhook receiver on a loopback port (threads of its own): records each delivery's
    ``webhook-id`` (the score event's id) and answers 200; it can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.ids: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def up(self) -> None:
        ids = self.ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                ids.append(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


async def subscribe(redis_url: str, prefix: str, url: str) -> None:
    """A webhook subscription to every score change, as the API would store it."""
    now = datetime.now(UTC)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await WebhookStore(client, prefix).save_subscription(
            WebhookSubscription(
                id="wh_chaos",
                url=url,
                secret="whsec_" + base64.b64encode(b"c" * 24).decode(),
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        )
    finally:
        await client.aclose()


class Server:
    """``leadscore broker|redis --data-dir DIR``: its process group, restartable on the same port."""

    def __init__(self, kind: str, data_dir: Path, log: Path) -> None:
        self.kind, self.data_dir, self.log = kind, data_dir, log
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leadscore", self.kind, "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=self.log.open("ab"),
            preexec_fn=child_setup(os.getpid()),  # own group; dies if this script dies
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if "=" not in line:
            raise RuntimeError(f"{self.kind} did not start: {self.log.read_text()[-2000:]}")
        self.address = line.split("=", 1)[1]
        return self.address

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class Worker:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings, self.log = settings, log
        self.process: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}
        env.update(settings_env(self.settings), PYTHONUNBUFFERED="1")
        self.process = spawn_child(
            [sys.executable, "-m", "leadscore", "worker", "--loglevel", "info"],
            self.log, env, Path.cwd(),
        )  # fmt: skip

    async def wait_ready(self, since: int = 0, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            if READY_LINE in self.log.read_bytes()[since:]:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout_s:.0f} s; log {self.log}")

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.exits.append(self.process.returncode)
            raise RuntimeError(f"the worker exited with {self.process.returncode}; log {self.log}")

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> float:
        if self.process is None or self.process.poll() is not None:
            return 0.0
        began = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        return time.monotonic() - began


async def produce(
    events: list[dict[str, Any]],
    settings: Settings,
    rate: float,
    progress: list[int],
    result: RunResult,
    garbage_n: int = 0,
) -> None:
    """Send every event, keyed by lead, at ``rate``/s, acks=all, as a careful producer does.

    With ``garbage_n``, that many malformed records (:func:`garbage`) go out spread among
    the events (sent once; not retried).

    The client retries a batch in order while the broker is away (for up to a minute);
    a send that still fails is sent again at the end and counted in ``publish_retries``.
    """
    route = topic_router(settings)
    topic_of_kind = {
        "activity": settings.activity_topic,
        "profile": settings.profile_topic,
        "outcome": settings.outcome_topic,
    }
    bad = garbage(garbage_n)
    bad_every = len(events) / len(bad) if bad else 0.0
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=60_000,
        retry_backoff_ms=200,
    )
    await producer.start()
    began = time.monotonic()
    pending: list[tuple[int, asyncio.Future[Any]]] = []
    sent_bad = [0]

    async def send(i: int) -> None:
        event = events[i]
        future = await producer.send(
            route(event["type"]), orjson.dumps(event), key=event["subject"].encode()
        )
        pending.append((i, future))

    try:
        for i in range(len(events)):
            due = began + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await send(i)
            while sent_bad[0] < len(bad) and sent_bad[0] * bad_every <= i:
                kind, key, value = bad[sent_bad[0]]
                await producer.send(topic_of_kind[kind], value, key=key)
                sent_bad[0] += 1
            progress[0] = i + 1
        while pending:
            waiting, pending[:] = list(pending), []
            await asyncio.gather(*(f for _, f in waiting), return_exceptions=True)
            for i, future in waiting:
                if future.exception() is not None:
                    result.publish_retries += 1
                    await send(i)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topics: list[str]) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await fetch_end_offsets(consumer, await consumer.end_offsets(tps))
        records: list[Any] = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            got = [r for rs in batch.values() for r in rs]
            records.extend(got)
            done = all([await consumer.position(tp) >= ends[tp] for tp in tps])
            idle = idle + 1 if not got and done else 0
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def scored_count(redis_url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        return int((await ScoreStore(client, prefix).stats()).get("scores", 0))
    except Exception:
        return -1
    finally:
        await client.aclose()


async def one_run(
    name: str,
    events: list[dict[str, Any]],
    faults: list[Fault],
    args: argparse.Namespace,
    workdir: Path,
    model_dir: Path,
) -> RunResult:
    result = RunResult(name, faults=faults)
    run_dir = workdir / name
    run_dir.mkdir(parents=True)
    broker = Server("broker", run_dir / "broker", run_dir / "broker.log")
    redis_server = Server("redis", run_dir / "redis", run_dir / "redis.log")
    worker: Worker | None = None
    receiver = Receiver()
    try:
        bootstrap, redis_url = broker.start(), redis_server.start()
        settings = Settings(
            kafka_bootstrap=bootstrap,
            redis_url=redis_url,
            model_dir=model_dir,
            score_change_threshold=0,
            min_training_labels=0,
            topic_partitions=4,
            webhook_allow_private=True,  # the receiver is on loopback
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}
        env.update(settings_env(settings))
        topics = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leadscore", "topics", env=env, stdout=subprocess.DEVNULL
        )
        if await topics.wait() != 0:
            raise RuntimeError("leadscore topics failed")
        receiver.up()
        await subscribe(redis_url, settings.redis_prefix, receiver.url)
        worker = Worker(settings, run_dir / "worker.log")
        worker.start()
        await worker.wait_ready()
        say(f"{name}: worker ready; publishing {len(events)} events at {args.rate:g}/s")
        progress = [0]
        garbage_n = result.garbage = args.garbage if faults else 0
        producing = asyncio.ensure_future(
            produce(events, settings, args.rate, progress, result, garbage_n)
        )
        for fault in faults:
            while progress[0] < fault.at * len(events) and not producing.done():
                worker.check()
                await asyncio.sleep(0.05)
            fault.killed_at = time.monotonic()
            if fault.target == "receiver":  # down for --receiver-down s, the rest goes on
                receiver.down()
                asyncio.get_running_loop().call_later(args.receiver_down, receiver.up)
                fault.back_at = fault.killed_at + args.receiver_down
                say(f"{name}: webhook receiver down at {progress[0]} events")
                continue
            if fault.target == "swap":  # promote the other model, kill the worker mid-swap
                promote = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "leadscore", "models", "promote", args.swap_to,
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                await promote.wait()
                await asyncio.sleep(0.3)  # the worker is loading the new model
                worker.kill()
                size = worker.log.stat().st_size
                worker.start()
                await worker.wait_ready(since=size)
            elif fault.target == "worker":
                worker.kill()
                size = worker.log.stat().st_size
                worker.start()
                await worker.wait_ready(since=size)
            else:
                server = broker if fault.target == "broker" else redis_server
                server.kill()
                await asyncio.sleep(args.down)
                server.start()
            fault.back_at = time.monotonic()
            say(f"{name}: {fault.target} killed at {progress[0]} events, back")
            before = -1
            while before < 0 and time.monotonic() - fault.back_at < 60:  # Redis answers
                before = await scored_count(redis_url, settings.redis_prefix)
            while time.monotonic() - fault.killed_at < 300:
                worker.check()
                now = await scored_count(redis_url, settings.redis_prefix)
                if now > before and now >= 0:
                    fault.scoring_again_s = time.monotonic() - fault.back_at
                    break
                await asyncio.sleep(0.2)
        await producing
        result.published = progress[0]
        say(f"{name}: published {progress[0]} ({result.publish_retries} retries); settling")
        # settled: the latest score of every lead stops changing
        began, last, stable_since = time.monotonic(), None, time.monotonic()
        leads = sorted({e["subject"] for e in events})
        result.leads = len(leads)
        client = aioredis.Redis.from_url(redis_url)
        store = ScoreStore(client, settings.redis_prefix)
        while time.monotonic() - began < args.settle_timeout:
            worker.check()
            latest = await store.latest_many(leads)
            snapshot = [None if x is None else x.get("id") for x in latest]
            if snapshot != last:
                last, stable_since = snapshot, time.monotonic()
            elif time.monotonic() - stable_since > args.quiet:
                break
            await asyncio.sleep(0.5)
        result.settle_s = stable_since - began
        say(f"{name}: settled after {result.settle_s:.1f} s; reading the topics")
        result.latest = {
            lead: x for lead, x in zip(leads, await store.latest_many(leads)) if x is not None
        }
        await client.aclose()
        result.leads_scored = len(result.latest)
        result.offline_mismatch, result.by_version = offline_check(events, result.latest, model_dir)
        inputs = await read_all(
            bootstrap, [settings.activity_topic, settings.profile_topic, settings.outcome_topic]
        )
        seen = {event_id(r.value) for r in inputs} - {None}  # malformed records: None
        published_ids = {e["id"] for e in events}
        result.on_topics = len(seen & published_ids)
        result.lost = len(published_ids - seen)
        # malformed records as the topics hold them (a send retried across a broker kill
        # can be written twice: each copy is a record to refuse)
        result.garbage_on_topics = sum(event_id(r.value) not in published_ids for r in inputs)
        dead = [
            orjson.loads(r.value) for r in await read_all(bootstrap, [settings.dead_letter_topic])
        ]
        # at least once: a crash can publish a dead letter twice; count the records refused
        result.dead_letters = len({(d["topic"], d["partition"], d["offset"]) for d in dead})
        result.dead_letters_repeated = len(dead) - result.dead_letters
        scores = await read_all(bootstrap, [settings.scores_topic])
        result.score_records = len(scores)
        expected = {orjson.loads(r.value)["id"] for r in scores}
        began = time.monotonic()
        back = max((f.back_at for f in faults if f.target == "receiver"), default=began)
        say(f"{name}: waiting for {len(expected)} webhook deliveries")
        for _ in range(int(args.webhook_wait)):  # a look a second
            if expected <= set(receiver.ids):
                break
            await asyncio.sleep(1.0)
        result.webhooks_expected = len(expected)
        result.webhooks_missing = len(expected - set(receiver.ids))
        result.webhooks_repeated = len(receiver.ids) - len(set(receiver.ids))
        result.webhooks_done_s = max(0.0, time.monotonic() - max(back, began))
        by_id: dict[str, bytes] = {}
        for record in scores:
            event = orjson.loads(record.value)
            if event.get("type") != "lead.scored":
                continue
            result.topic_latest[event["lead_id"]] = event
            if event["id"] not in by_id:  # a consumer that drops repeated ids
                result.dedup_latest[event["lead_id"]] = event
            earlier = by_id.setdefault(event["id"], record.value)
            if earlier is not record.value:
                result.repeated_score_ids += 1
                result.repeated_ids_differing += earlier != record.value
    finally:
        if worker is not None:
            if worker.process is not None and worker.process.poll() is not None:
                worker.exits.append(worker.process.returncode)
            stop_s = worker.stop()
            print(f"{name}: worker stopped in {stop_s:.1f} s", file=sys.stderr)
            result.worker_exits = len(worker.exits)
            result.worker_log_lines = len(worker.log.read_bytes().splitlines())
        receiver.down()
        broker.stop()
        redis_server.stop()
    return result


def offline_check(
    events: list[dict[str, Any]], latest: dict[str, dict[str, Any]], model_dir: Path
) -> tuple[int, dict[str, int]]:
    """Leads whose final score is not what its model gives for all the lead's events, applied
    in order here (offline); and how many leads each model version scored last."""
    by_lead: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_lead.setdefault(event["subject"], []).append(event)
    scorers: dict[str, Any] = {}
    mismatched, by_version = 0, Counter[str]()
    for lead, score in latest.items():
        version = score["model_version"]
        by_version[version] += 1
        if version not in scorers:
            settings = Settings(model_dir=model_dir, min_training_labels=0)
            scorers[version] = load_scorer(settings, version)
        state = LeadState(lead)
        for event in by_lead.get(lead, []):
            apply_event(state, lead_event_adapter.validate_python(event))
        expected = float(scorers[version].probabilities(to_vector(state)[None, :])[0])
        mismatched += abs(round(expected, 6) - float(score["probability"])) > 2e-6
    return mismatched, dict(by_version)


def event_id(value: bytes | None) -> str | None:
    """The ``id`` of an input record's event, ``None`` for a record that is not one."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else None


def parse_faults(text: str) -> list[Fault]:
    faults = []
    for part in filter(None, text.split(",")):
        target, _, at = part.partition("@")
        if target not in ("broker", "redis", "worker", "swap", "receiver"):
            raise SystemExit(
                f"unknown fault target {target!r} (broker, redis, worker, swap or receiver)"
            )
        faults.append(Fault(target, float(at)))
    return sorted(faults, key=lambda f: f.at)


def second_model(model_dir: Path, champion: str) -> str:
    """Another lead-event model in the registry to swap to (trained once, not promoted)."""
    registry = ModelRegistry(model_dir)
    for version in registry.list():
        if version != champion and registry.manifest(version).kind == "lead_events":
            return version
    from leadscore.jobs.train import train_job

    print("training a second model to swap to (~20 s)", file=sys.stderr)
    return train_job(
        Settings(model_dir=model_dir), leads=1500, folds=2, search="none",
        compare=("ensemble",), seed=7, promote=False,
    ).version  # fmt: skip


def compare(reference: RunResult, faulted: RunResult) -> dict[str, int]:
    def fields(x: dict[str, Any] | None) -> tuple[Any, ...] | None:
        return None if x is None else tuple(x.get(k) for k in SAME)

    leads = set(reference.latest) | set(faulted.latest)
    redis_differs = sum(
        fields(reference.latest.get(lead)) != fields(faulted.latest.get(lead)) for lead in leads
    )
    topic_differs = sum(
        fields(reference.topic_latest.get(lead)) != fields(faulted.topic_latest.get(lead))
        for lead in leads
    )
    dedup_differs = sum(
        fields(reference.dedup_latest.get(lead)) != fields(faulted.dedup_latest.get(lead))
        for lead in leads
    )
    return {
        "leads_differing_in_redis": redis_differs,
        "leads_differing_on_topic": topic_differs,  # a consumer keeping the last record per lead
        "leads_differing_dropping_repeats": dedup_differs,  # one dropping repeated score ids
    }


@contextlib.contextmanager
def work_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="leadscore-chaos-") as tmp:
        yield Path(tmp)


async def main(args: argparse.Namespace) -> int:
    model_dir = Path(args.model_dir).resolve()
    champion = ensure_model(model_dir)
    args.swap_to = None
    if any(f.target == "swap" for f in parse_faults(args.faults)):
        args.swap_to = second_model(model_dir, champion)
    events = simulated(args.events, args.leads, args.seed)
    faults = parse_faults(args.faults)
    with work_dir(Path(args.workdir) if args.workdir else None) as workdir:
        reference = await one_run("fault-free", events, [], args, workdir, model_dir)
        try:
            faulted = await one_run("faults", events, faults, args, workdir, model_dir)
        finally:
            ModelRegistry(model_dir).promote(champion)  # after a swap: as it was
    swapped = args.swap_to is not None
    # After a swap the final scores depend on where it fell: each must be its model's score.
    differing = {} if swapped else compare(reference, faulted)
    rows = []
    for run in (reference, faulted):
        rows.append({
            "run": run.name, "published": run.published, "retries": run.publish_retries,
            "on_topics": run.on_topics, "lost": run.lost, "leads": run.leads,
            "leads_scored": run.leads_scored, "score_records": run.score_records,
            "repeated_ids": run.repeated_score_ids,
            "repeated_ids_differing": run.repeated_ids_differing,
            "worker_exits": run.worker_exits, "worker_log_lines": run.worker_log_lines,
            "garbage": run.garbage, "garbage_on_topics": run.garbage_on_topics,
            "dead_letters": run.dead_letters,
            "dead_letters_repeated": run.dead_letters_repeated,
            "offline_mismatch": run.offline_mismatch, "by_version": run.by_version,
            "webhooks_expected": run.webhooks_expected, "webhooks_missing": run.webhooks_missing,
            "webhooks_repeated": run.webhooks_repeated,
            "settled_s": round(run.settle_s, 1),
        })  # fmt: skip
    fault_rows = [
        {
            "fault": f"{f.target} kill -9 at {f.at:.0%}",
            "down_s": round(f.back_at - f.killed_at, 1),
            "scoring_again_s": None if f.scoring_again_s is None else round(f.scoring_again_s, 1),
        }
        for f in faulted.faults
    ]
    print(f"machine: {machine()}")
    for row in rows + fault_rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print("  ".join(f"{k}={v}" for k, v in differing.items()))
    ok = (
        faulted.lost == 0
        and faulted.worker_exits == 0
        and faulted.repeated_ids_differing == 0
        and not any(differing.values())
        and faulted.leads_scored == reference.leads_scored == reference.leads
        and faulted.dead_letters == faulted.garbage_on_topics >= faulted.garbage
        and faulted.offline_mismatch == 0
        and faulted.webhooks_missing == 0 == reference.webhooks_missing
        and (not swapped or args.swap_to in faulted.by_version)
    )
    print("PASS" if ok else "FAIL")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "runs": rows,
                    "faults": fault_rows,
                    "compare": differing,
                    "ok": ok,
                    "machine": machine(),
                    "args": vars(args),
                },
                indent=2,
            )  # fmt: skip
        )
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=12_000)
    parser.add_argument("--leads", type=int, default=600)
    parser.add_argument("--rate", type=float, default=100.0, help="events/s published")
    parser.add_argument("--faults", default="broker@0.25,redis@0.45,broker@0.7")
    parser.add_argument("--down", type=float, default=5.0, help="seconds a server stays down")
    parser.add_argument(
        "--quiet", type=float, default=10.0, help="seconds without a change = settled"
    )
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--receiver-down", type=float, default=600.0,
        help="seconds a receiver@F fault keeps the webhook receiver down",
    )  # fmt: skip
    parser.add_argument(
        "--webhook-wait", type=float, default=1200.0,
        help="longest wait for every score event to reach the webhook receiver",
    )  # fmt: skip
    parser.add_argument(
        "--garbage", type=int, default=0,
        help="malformed records (26 kinds) spread among the events of the run with faults",
    )  # fmt: skip
    parser.add_argument("--model-dir", default="artifacts/bench/model")
    parser.add_argument("--workdir", help="keep data and logs here (default: a temp dir)")
    parser.add_argument("--json", help="write the results here")
    sys.exit(asyncio.run(main(parser.parse_args())))
