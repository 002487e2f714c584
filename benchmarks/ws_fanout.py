"""WebSocket fan-out: N clients on one ``leadscore api`` process, score events at a given rate.

One run per rate in ``--rates``, on fresh topics of one broker:

1. ``python -m leadscore api`` (one process, the defaults of the command) on its own
   scores topic and Redis prefix; an API key with scope ``read``.
2. ``--clients`` WebSocket connections to ``/v1/stream`` (the ``websockets`` library),
   spread over ``--client-procs`` processes; each subscribes to every score event.
3. ``LeadScored`` events (5 reasons, 3 changes: ~1.3 kB of JSON, like the worker's)
   published on the scores topic at ``--rate`` events/s for ``--seconds``, keyed over
   5,000 leads. Each event's id carries its publish time (wall clock, ns).
4. Every client counts the ``score`` messages it gets and the ``dropped`` counts, and
   records publish-to-receipt latency of every message. The run ends when every client
   got every event (or a drop said it will not), or after ``--drain-s`` without progress.

Reported per rate: messages delivered per second to all clients (during publishing and
overall), latency p50/p99/max, messages dropped, and the CPU the API process used (cores).
Everything runs on this machine -- the broker, Redis, the API, the client processes and
the publisher share its cores -- so figures are a floor for a dedicated API host.

Servers: the embedded Tansu broker and redis-server (started and stopped here), or
``--kafka HOST:PORT`` / ``--redis URL``.

Usage::

    .venv/bin/python benchmarks/ws_fanout.py                                  # ~2 min
    .venv/bin/python benchmarks/ws_fanout.py --clients 1000 --rates 10,50,100 --seconds 20
    .venv/bin/python benchmarks/ws_fanout.py --compression none --json out.json
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.processes import spawn_child, stop_child
from leadscore.infra.embedded.servers import embedded_services
from leadscore.infra.kafka.client import client_options, ensure_topics
from leadscore.infra.launch import settings_env
from leadscore.settings import Settings

READY_TIMEOUT_S = 60.0


# --- the client processes ----------------------------------------------------------------------


@dataclass
class ClientResult:
    """What one client process saw."""

    connections: int
    failed: int
    received: int
    dropped: int
    latencies_ms: np.ndarray
    first_receipt_ns: int
    last_receipt_ns: int


def client_process(
    url: str, key: str, count: int, compression: str, impl: str, ready: Any, stop: Any,
    progress: Synchronized, results: Any,
) -> None:  # fmt: skip
    """Entry point of one client process: ``count`` connections until ``stop`` is set."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    results.put(asyncio.run(_clients(url, key, count, compression, ready, stop, progress, impl)))


class _Tally:
    """One client process's counts and latencies (single-threaded: plain attributes)."""

    def __init__(self) -> None:
        self.latencies = array.array("d")
        self.received = 0
        self.dropped = 0
        self.failed = 0
        self.first = 0
        self.last = 0
        self.opened = 0

    def on_text(self, text: bytes) -> None:
        """Count one text message: a score (latency from the publish time in its id) or not."""
        now = time.time_ns()
        at = text.find(b'"id":"bench-')
        if at >= 0 and text.startswith(b'{"type":"score"'):
            start = text.index(b"-", at + 12) + 1
            sent_ns = int(text[start : text.index(b'"', start)])
            self.latencies.append((now - sent_ns) / 1e6)
            self.received += 1
            self.first = self.first or now
            self.last = now
            return
        body = orjson.loads(text)
        if body.get("type") == "dropped":
            self.dropped += body["count"]


class _SansIOClient(asyncio.Protocol):
    """A WebSocket client on the ``websockets`` Sans-I/O protocol: no task or future per
    message, so one process can read many more messages than with the asyncio client."""

    def __init__(
        self, url: str, deflate: bool, tally: _Tally, opened: asyncio.Future[None]
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(
            parse_uri(url), extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
            max_size=None,
        )  # fmt: skip
        self.tally = tally
        self.opened = opened
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.tally.on_text(event.data)
            elif isinstance(event, Response) and not self.opened.done():
                if event.status_code == 101:
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(OSError(f"handshake answered {event.status_code}"))
        self._flush()  # pongs, close frames

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or OSError("closed during the handshake"))

    def _flush(self) -> None:
        out = self.protocol.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))


async def _clients(
    url: str, key: str, count: int, compression: str, ready: Any, stop: Any, progress: Synchronized,
    impl: str,
) -> ClientResult:  # fmt: skip
    tally = _Tally()
    connected = asyncio.Event()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []

    async def one_sansio(i: int) -> None:
        opened: asyncio.Future[None] = loop.create_future()
        host_port = url.split("/")[2]
        host, port = host_port.rsplit(":", 1)
        try:
            transport, _ = await loop.create_connection(
                lambda: _SansIOClient(f"{url}?api_key={key}", compression == "deflate", tally, opened),
                host, int(port),
            )  # fmt: skip
            transports.append(transport)
            await asyncio.wait_for(opened, 60)
        except (OSError, TimeoutError) as exc:
            tally.failed += 1
            print(f"connection {i} failed: {exc!r}", file=sys.stderr)
            return
        tally.opened += 1
        if tally.opened == count:
            connected.set()

    async def one_asyncio(i: int) -> None:
        from websockets.asyncio.client import connect

        try:
            async with connect(
                f"{url}?api_key={key}",
                compression=None if compression == "none" else "deflate",
                max_queue=None,
                open_timeout=60,
                ping_interval=None,
            ) as ws:
                tally.opened += 1
                if tally.opened == count:
                    connected.set()
                async for message in ws:
                    tally.on_text(message.encode() if isinstance(message, str) else message)
        except (OSError, TimeoutError) as exc:
            tally.failed += 1
            print(f"connection {i} failed: {exc!r}", file=sys.stderr)
        except Exception as exc:  # websockets' ConnectionClosed and friends: count, report, go on
            if not stop.is_set():
                tally.failed += 1
                print(f"connection {i} ended: {exc!r}", file=sys.stderr)

    one = one_sansio if impl == "sansio" else one_asyncio
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(i)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # don't open 500 TCP connections in one burst
    await asyncio.wait_for(connected.wait(), READY_TIMEOUT_S)
    ready.put(count)
    while not stop.is_set():
        progress.value = tally.received + tally.dropped
        await asyncio.sleep(0.2)
    progress.value = tally.received + tally.dropped
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for transport in transports:
        transport.close()
    return ClientResult(
        count, tally.failed, tally.received, tally.dropped,
        np.frombuffer(tally.latencies, dtype=np.float64).copy(), tally.first, tally.last,
    )  # fmt: skip


# --- the publisher and the API ---------------------------------------------------------------------


def score_body(n: int, lead: str) -> dict[str, Any]:
    """A realistic score event (5 reasons, 3 changes); its id carries the publish time."""
    now = datetime.now(UTC).isoformat()
    return {
        "type": "lead.scored",
        "id": f"bench-{n}-{time.time_ns()}",
        "lead_id": lead,
        "score": 40 + n % 60,
        "probability": 0.4 + (n % 60) / 100,
        "grade": "ABCD"[n % 4],
        "previous_score": 40 + (n + 7) % 60,
        "previous_grade": "ABCD"[(n + 1) % 4],
        "model_version": "ensemble-20260101T000000Z-bench",
        "base_score": 31.4,
        "reasons": [
            {"feature": f"feature_{i}", "label": f"{i + 2} demo requests in the last 14 days",
             "value": float(i + 2), "contribution": 6.5 - i}
            for i in range(5)
        ],
        "changes": [
            {"feature": f"feature_{i}", "label": f"{i + 2} demo requests in the last 14 days",
             "contribution": 6.5 - i, "previous_contribution": 4.0 - i, "delta": 2.5}
            for i in range(3)
        ],
        "components": {"fit": 12.5, "engagement": 21.25,
                       "families": {"demographic": 10.0, "behavioral": 15.0, "engagement": 6.25}},
        "cause_event_id": f"ev-{n}",
        "event_time": now,
        "scored_at": now,
        "experiment": None,
        "arm": None,
    }  # fmt: skip


async def publish_paced(
    settings: Settings, rate: float, seconds: float
) -> tuple[int, float, float]:
    """Publish ``rate`` events/s for ``seconds``; returns (events, start, end) in wall-clock s."""
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=2, acks=1)
    await producer.start()
    total = int(rate * seconds)
    started = time.time()
    pending = []
    try:
        for n in range(total):
            due = started + n / rate
            delay = due - time.time()
            if delay > 0.002:
                await asyncio.sleep(delay)
            lead = f"lead-{n % 5000}"
            pending.append(await producer.send(
                settings.scores_topic, orjson.dumps(score_body(n, lead)), key=lead.encode()
            ))  # fmt: skip
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return total, started, time.time()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (Linux ``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


async def feed_stats(base: str) -> dict[str, float]:
    """The API's ``leadscore_api_feed_*`` gauges from ``/metrics``."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        text = (await http.get("/metrics")).text
    out = {}
    for line in text.splitlines():
        if line.startswith("leadscore_api_feed_"):
            name, value = line.split()
            out[name.removeprefix("leadscore_api_feed_")] = float(value)
    return out


async def wait_ready(base: str, process: Any, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the API exited {process.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit(
        f"the API was not ready in {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}"
    )


# --- one run -----------------------------------------------------------------------------------


async def run_once(
    args: argparse.Namespace,
    kafka: str,
    redis_url: str,
    broker_pid: int | None,
    rate: float,
    work: Path,
) -> dict[str, Any]:
    prefix = f"bench-ws-{uuid.uuid4().hex[:8]}."
    port = free_port()
    settings = Settings(
        kafka_bootstrap=kafka, redis_url=redis_url, redis_prefix=prefix, model_dir=work / "models",
        activity_topic=f"{prefix}leads.activity.v1", profile_topic=f"{prefix}leads.profile.v1",
        outcome_topic=f"{prefix}leads.outcome.v1", scores_topic=f"{prefix}leads.scores.v1",
        dead_letter_topic=f"{prefix}leads.dead-letter.v1", model_events_topic=f"{prefix}models.events.v1",
        api_port=port, api_host="127.0.0.1",
    )  # fmt: skip
    await ensure_topics(settings)
    client = aioredis.Redis.from_url(redis_url)
    try:
        key, _ = await KeyStore(client, prefix).create("ws-bench", ["read"])
    finally:
        await client.aclose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}
    env.update(settings_env(settings))
    log = work / f"api-{int(rate)}.log"
    api = spawn_child(
        [sys.executable, "-m", "leadscore", "api", "--loglevel", "warning"], log, env, Path.cwd()
    )
    base = f"http://127.0.0.1:{port}"
    ctx = mp.get_context("spawn")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [args.clients // args.client_procs + (i < args.clients % args.client_procs)
              for i in range(args.client_procs)]  # fmt: skip
    progress = [ctx.Value("q", 0, lock=False) for _ in shares]
    procs = []
    try:
        await wait_ready(base, api, log)
        url = f"ws://127.0.0.1:{port}/v1/stream"
        for share, counter in zip(shares, progress):
            proc = ctx.Process(target=client_process, args=(
                url, key, share, args.compression, args.client_impl, ready, stop, counter, results
            ))  # fmt: skip
            proc.start()
            procs.append(proc)
        connect_started = time.monotonic()
        for _ in procs:
            await asyncio.get_running_loop().run_in_executor(
                None, ready.get, True, READY_TIMEOUT_S * 2
            )
        connect_s = time.monotonic() - connect_started
        stats_before = await feed_stats(base)
        cpu_before = cpu_seconds(api.pid)
        clients_before = sum(cpu_seconds(proc.pid) for proc in procs)
        broker_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        machine_before = machine_busy()
        published, pub_start, pub_end = await publish_paced(settings, rate, args.seconds)
        cpu_at_end = cpu_seconds(api.pid)
        expected = published * args.clients
        last, last_change = -1, time.monotonic()
        while True:  # until every client got (or was told it lost) every event
            done = sum(counter.value for counter in progress)
            if done >= expected:
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > args.drain_s:
                break
            await asyncio.sleep(0.1)
        drained_at = time.time()
        cpu_after = cpu_seconds(api.pid)
        clients_after = sum(cpu_seconds(proc.pid) for proc in procs)
        broker_after = cpu_seconds(broker_pid) if broker_pid else 0.0
        machine_after = machine_busy()
        stats_after = await feed_stats(base)
        stop.set()
        parts: list[ClientResult] = [
            await asyncio.get_running_loop().run_in_executor(None, results.get, True, 60)
            for _ in procs
        ]
    finally:
        stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        stop_child(api)
    latencies = np.concatenate([p.latencies_ms for p in parts]) if parts else np.array([])
    received = sum(p.received for p in parts)
    dropped = sum(p.dropped for p in parts)
    last_receipt = max((p.last_receipt_ns for p in parts), default=0) / 1e9
    p50, p99, pmax = (
        np.percentile(latencies, [50, 99, 100]) if latencies.size else (float("nan"),) * 3
    )
    span_s = max(last_receipt - pub_start, 1e-9)  # first publish to last receipt
    return {
        "clients": args.clients,
        "client_procs": args.client_procs,
        "compression": args.compression,
        "client_impl": args.client_impl,
        "rate_per_s": rate,
        "seconds": args.seconds,
        "published": published,
        "publish_s": round(pub_end - pub_start, 2),
        "connect_s": round(connect_s, 1),
        "failed_connections": sum(p.failed for p in parts),
        "expected_messages": expected,
        "received_messages": received,
        "dropped_messages": dropped,
        "missing_messages": expected - received - dropped,
        "delivered_per_s": round(received / span_s),
        "drain_after_publish_s": round(max(last_receipt - pub_end, 0.0), 2),
        "latency_ms": {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(pmax), 1)},
        "api_cpu_cores_while_publishing": round((cpu_at_end - cpu_before) / max(pub_end - pub_start, 1e-9), 2),
        "api_cpu_cores_overall": round((cpu_after - cpu_before) / max(drained_at - pub_start, 1e-9), 2),
        "api_cpu_us_per_message": round((cpu_after - cpu_before) / max(received + dropped, 1) * 1e6, 1),
        "client_procs_cpu_cores": round((clients_after - clients_before) / max(drained_at - pub_start, 1e-9), 2),
        "broker_cpu_cores": round((broker_after - broker_before) / max(drained_at - pub_start, 1e-9), 2),
        "machine_busy_cores": round(
            (machine_after[0] - machine_before[0]) / max(machine_after[1] - machine_before[1], 1)
            * (os.cpu_count() or 1), 2,
        ),  # fmt: skip
        "server_feed_delta": {k: stats_after.get(k, 0) - stats_before.get(k, 0)
                              for k in ("events", "delivered", "dropped")},
        "server_clients": stats_after.get("clients"),
    }  # fmt: skip


def print_table(info: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(f"\nmachine: {info['cores']} cores, {info['cpu']}, python {info['python']}, "
          f"load {info['loadavg_1m_at_start']} at start")  # fmt: skip
    print(f"{rows[0]['clients']} clients in {rows[0]['client_procs']} processes "
          f"({rows[0]['client_impl']} client), compression {rows[0]['compression']}, "
          "one API process\n")  # fmt: skip
    head = ("events/s", "needed/s", "msgs/s", "p50 ms", "p99 ms", "max ms", "dropped", "missing",
            "drain s", "API cores", "API us/msg", "client cores", "busy cores")  # fmt: skip
    print(" | ".join(f"{h:>11}" for h in head))
    for r in rows:
        cells = (r["rate_per_s"], round(r["rate_per_s"] * r["clients"]), r["delivered_per_s"],
                 r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["latency_ms"]["max"],
                 r["dropped_messages"], r["missing_messages"], r["drain_after_publish_s"],
                 r["api_cpu_cores_overall"], r["api_cpu_us_per_message"],
                 r["client_procs_cpu_cores"], r["machine_busy_cores"])  # fmt: skip
        print(" | ".join(f"{c:>11}" for c in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--client-procs", type=int, default=2, help="processes the clients are spread over"
    )
    parser.add_argument("--rates", default="10,50,100", help="events/s to publish, one run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per run")
    parser.add_argument(
        "--drain-s", type=float, default=10.0, help="give up after this long without progress"
    )
    parser.add_argument("--compression", choices=("deflate", "none"), default="deflate",
                        help="what clients offer: deflate (what browsers do) or none")  # fmt: skip
    parser.add_argument("--client-impl", choices=("sansio", "asyncio"), default="sansio",
                        help="websockets' Sans-I/O protocol on asyncio (light) or its asyncio client")  # fmt: skip
    parser.add_argument(
        "--kafka", help="bootstrap of a broker to use (default: start an embedded one)"
    )
    parser.add_argument("--redis", help="URL of a Redis to use (default: start an embedded one)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    info = machine()
    work = Path("artifacts/bench/ws_fanout")
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with embedded_services(args.kafka, args.redis) as services:
        for rate in (float(r) for r in args.rates.split(",")):
            print(f"rate {rate:g}/s: {args.clients} clients ...", file=sys.stderr, flush=True)
            broker_pid = services.kafka.pid if services.kafka is not None else None
            row = asyncio.run(
                run_once(args, services.kafka_bootstrap, services.redis_url, broker_pid, rate, work)
            )
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    print_table(info, rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
