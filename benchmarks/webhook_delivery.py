"""Webhook delivery to a local receiver, beside a plain HTTP client on the same receiver in the same run.

What runs (one Redis, one receiver process, this process; all on one machine):

- **receiver**: a separate process (this file with ``--serve-receiver``): an aiohttp server
  on uvloop, 127.0.0.1, answering ``200 ok``. It checks **every** request: a signed one
  with the stock ``standardwebhooks`` package (``Webhook(secret).verify``), and for every
  request that the body's ``data.id`` equals the ``webhook-id`` header (so it parses each
  body's JSON whether signed or not: the same work for the deliverer and the baselines,
  but for the HMAC). It keeps the ``webhook-id`` of each request in arrival order and its
  own CPU time, and hands them over on ``GET /_report``.
- **queueing**: ``queue_score_events(records, SubscriptionCache(store), store)`` on
  ``--queue-events`` score events over ``--queue-leads`` leads, in batches of 256, one
  subscription (no filters). Baseline: the same event bytes ``RPUSH``\\ed to one list per
  lead, one ``pipeline(transaction=False)`` per batch of 256 (one round trip per batch, as
  ``enqueue`` does, without the decoding, the delivery records and the Lua script).
- **delivery**: for each ``--concurrency`` C, ``--events`` score events over ``--leads``
  leads (the leads interleaved, as on the topic) are queued for one subscription pointing
  at the receiver, then ``WebhookDeliverer(store, DeliveryPolicy.from_settings(Settings(
  webhook_allowed_networks="127.0.0.0/8", webhook_concurrency=C)), ...).drain(...)`` is
  timed until nothing is queued. The Redis pool is sized as the worker sizes it (C + 4).
  **One lead**: ``--one-lead-events`` events of a single lead, C = 32: strictly one at a time.
- **baselines** (same receiver, the same envelope bodies as the deliverer sends, in queue
  order; no signing, no Redis, no ordering; a ``webhook-id`` header so the receiver can
  count): C tasks POSTing as fast as answers come back, with
  ``httpx``: one ``AsyncClient`` of one connection per task (the deliverer's own client
  pattern, so the ratio is what Redis, signing and the ordering cost), and
  ``aiohttp``: one ``ClientSession`` with C connections (a faster client: this machine's
  loopback HTTP ceiling from Python). One lead: the same clients with one task.

Each figure is the best of ``--rounds`` runs; in each round the methods take turns (the
order flips every round), so a burst of load on the shared machine hits them all.
Deliveries/s = events / wall time: for the deliverer, of ``drain`` from its call until it
returns (it sees the backlog empty within 50 ms, then stops ``run()`` and closes its
clients; the 8-128 clients are made inside, so their set-up counts); for a baseline, from
starting its tasks to the last answer (its clients are made before; connections inside). The receiver's
first-to-last request rate is in ``--json`` too. A ``drain`` that hangs (its cancellation
of ``run()`` lost: see :func:`drain_watched`) is unstuck, its run discarded and run again.

Checked in every delivery run (the script exits 1 if any check fails): every event
reached the receiver exactly once (counted by ``webhook-id``), in order per lead, every
signature verified, no failed attempt and no dead letter (``store.stats()``), nothing
left queued. The baselines are checked for once-each too (they promise no order).

CPU: this process (the deliverer or the baseline client), the receiver, redis-server
(``INFO cpu``: the whole server, so another user of that Redis shows there) and the
machine (``/proc/stat``), in cores over each timed run; and this process's CPU per
delivery (µs), which depends less on what else the machine is doing than the rates do.
The ``sniffio`` version (or its absence) is printed: without it httpcore tries to import
it ~4 times per request (docs/performance.md, "Webhook delivery").

Usage::

    .venv/bin/python benchmarks/webhook_delivery.py          # ~2-3 min; or `make bench-webhooks`
    .venv/bin/python benchmarks/webhook_delivery.py --rounds 1 --concurrency 32 --json out.json
    .venv/bin/python benchmarks/webhook_delivery.py --cprofile-top 25   # + a profiled run at C=32

Redis: ``--redis`` (default ``redis://127.0.0.1:6379/0``). Every key is under a fresh
prefix (``bench-webhooks-<random>:``), deleted at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.metadata
import io
import json
import os
import pstats
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.infra.webhooks.delivery import DeliveryPolicy, WebhookDeliverer
from leadscore.infra.webhooks.messages import envelope_body, sample_event
from leadscore.infra.webhooks.queue import (
    SubscriptionCache,
    queue_score_events,
)
from leadscore.infra.webhooks.signing import generate_secret
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.infra.webhooks.worker import connect
from leadscore.models.batch.records import InputRecord
from leadscore.schemas.scores import LeadScored
from leadscore.schemas.webhooks import WebhookSubscription
from leadscore.settings import Settings

BATCH = 256  # records per queue_score_events call: the worker's default batch_size
READY_TIMEOUT_S = 30.0


# --- the receiver (its own process) -----------------------------------------------------------------


def serve_receiver(port: int, secret: str) -> None:
    """Run the receiver on 127.0.0.1:``port`` until killed (see the module doc)."""
    import uvloop
    from aiohttp import web
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    webhook = Webhook(secret)
    state: dict[str, Any] = {}

    def reset() -> None:
        state.update(ids=[], verified=0, bad_signature=0, unsigned=0, id_mismatch=0,
                     first_ns=0, last_ns=0)  # fmt: skip

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        webhook_id = headers.get("webhook-id", "")
        if "webhook-signature" in headers:
            try:
                webhook.verify(body, dict(headers), json_parse=False)
                state["verified"] += 1
            except WebhookVerificationError:
                state["bad_signature"] += 1
        else:
            state["unsigned"] += 1
        if orjson.loads(body)["data"]["id"] != webhook_id:
            state["id_mismatch"] += 1
        state["ids"].append(webhook_id)
        now = time.perf_counter_ns()
        state["first_ns"] = state["first_ns"] or now
        state["last_ns"] = now
        return web.Response(body=b"ok")

    async def report(request: web.Request) -> web.Response:
        out = dict(state, cpu_s=time.process_time())
        if request.query.get("reset"):
            reset()
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    async def main() -> None:
        reset()
        app = web.Application()
        app.router.add_post("/hooks/leadscore", hook)
        app.router.add_get("/_report", report)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()

    uvloop.run(main())


@dataclass
class Receiver:
    """The receiver process, seen from here."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        """Where the subscription and the baselines send."""
        return f"http://127.0.0.1:{self.port}/hooks/leadscore"

    async def report(self, reset: bool = True) -> dict[str, Any]:
        """What it got since the last reset (and reset it)."""
        async with httpx.AsyncClient(trust_env=False) as client:
            url = f"http://127.0.0.1:{self.port}/_report" + ("?reset=1" if reset else "")
            response = await client.get(url, timeout=30)
            response.raise_for_status()
            result: dict[str, Any] = orjson.loads(response.content)
            return result


def start_receiver(secret: str) -> Receiver:
    """Start the receiver process and wait until it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-receiver", "--port", str(port)],
        env=dict(os.environ, WEBHOOK_BENCH_SECRET=secret),
    )
    receiver = Receiver(process, port)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            asyncio.run(receiver.report())
            return receiver
        except httpx.TransportError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"the receiver (port {port}) did not start within {READY_TIMEOUT_S:g} s"
                ) from exc
            time.sleep(0.2)


# --- events and checks -----------------------------------------------------------------------------


def lead_name(lead: int) -> str:
    """The id of simulated lead number ``lead``."""
    return f"bench-lead-{lead:05d}"


def make_events(tag: str, leads: int, per_lead: int, first_lead: int = 0) -> list[LeadScored]:
    """``leads * per_lead`` score events, the leads interleaved (as many leads share a topic).

    Ids are ``sc_<tag>_<lead>_<seq>``, so the receiver's arrival order can be checked per lead.
    """
    now = datetime.now(UTC)
    base = sample_event("sc_x", now)
    return [
        base.model_copy(update={"id": f"sc_{tag}_{lead:05d}_{seq:05d}", "lead_id": lead_name(lead),
                                "score": 40 + (lead + seq) % 60})
        for seq in range(per_lead)
        for lead in range(first_lead, first_lead + leads)
    ]  # fmt: skip


def check_received(ids: list[str], expected: list[str], ordered: bool) -> dict[str, Any]:
    """Every expected id exactly once, and (``ordered``) each lead's ids in sequence order."""
    counts: dict[str, int] = {}
    for webhook_id in ids:
        counts[webhook_id] = counts.get(webhook_id, 0) + 1
    wanted = set(expected)
    last_seq: dict[str, int] = {}
    leads_out_of_order: set[str] = set()
    for webhook_id in ids:
        _, lead, seq = webhook_id.rsplit("_", 2)
        if int(seq) < last_seq.get(lead, -1):
            leads_out_of_order.add(lead)
        last_seq[lead] = int(seq)
    result = {
        "expected": len(expected),
        "received": len(ids),
        "missing": len(wanted - counts.keys()),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected": len(counts.keys() - wanted),
        "leads_out_of_order": len(leads_out_of_order),
    }
    result["ok"] = result["missing"] == result["duplicates"] == result["unexpected"] == 0 and (
        not ordered or not leads_out_of_order
    )
    return result


# --- CPU ---------------------------------------------------------------------------------------------


def own_cpu_s() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (Linux ``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


async def redis_cpu_s(client: aioredis.Redis) -> float:
    """CPU seconds redis-server has used since it started (all its clients)."""
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def timed(
    client: aioredis.Redis, receiver: Receiver, work: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Run ``work`` with the receiver just reset; wall time, CPU of everyone, what the receiver got."""
    await receiver.report(reset=True)
    redis0, busy0, own0 = await redis_cpu_s(client), machine_busy(), own_cpu_s()
    receiver0 = (await receiver.report(reset=False))["cpu_s"]
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    own1, busy1, redis1 = own_cpu_s(), machine_busy(), await redis_cpu_s(client)
    got = await receiver.report(reset=True)

    def cores(cpu_s: float) -> float:
        return round(cpu_s / elapsed, 2)

    return {
        "elapsed_s": elapsed,
        "received": got,
        "cpu_cores": {
            "this_process": cores(own1 - own0),
            "receiver": cores(got["cpu_s"] - receiver0),
            "redis": cores(redis1 - redis0),
            "machine": round(
                (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1) * (os.cpu_count() or 1), 2
            ),
        },
    }


# --- the three kinds of run ----------------------------------------------------------------------------


class Bench:
    """One Redis and one receiver, shared by every run; a fresh key prefix per run."""

    def __init__(self, redis_url: str, receiver: Receiver, secret: str) -> None:
        self.redis_url = redis_url
        self.receiver = receiver
        self.secret = secret
        self.base_prefix = f"bench-webhooks-{secrets.token_hex(4)}:"
        self.admin = aioredis.Redis.from_url(redis_url)
        self.runs = 0
        # Every subscription is dated before any event is made (it gets events scored after it).
        self.created_at = datetime.now(UTC)

    def prefix(self) -> str:
        """A prefix no earlier run used."""
        self.runs += 1
        return f"{self.base_prefix}{self.runs}:"

    async def cleanup(self, prefix: str | None = None) -> int:
        """Delete every key under ``prefix`` (default: every key of this benchmark)."""
        deleted = 0
        batch: list[bytes] = []
        async for key in self.admin.scan_iter(match=f"{prefix or self.base_prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await self.admin.unlink(*batch)
                batch = []
        if batch:
            deleted += await self.admin.unlink(*batch)
        return deleted

    async def subscribed_store(self, concurrency: int) -> tuple[WebhookStore, aioredis.Redis, str]:
        """A store under a fresh prefix, with one subscription (no filters) to the receiver."""
        prefix = self.prefix()
        client = connect(self.redis_url, max_connections=concurrency + 4)  # as the worker sizes it
        store = WebhookStore(client, prefix)
        await store.save_subscription(WebhookSubscription(
            id=f"wh_bench{self.runs}", url=self.receiver.url, secret=self.secret,
            created_at=self.created_at, updated_at=self.created_at,
        ))  # fmt: skip
        return store, client, prefix

    async def queue(self, store: WebhookStore, events: list[LeadScored]) -> float:
        """Queue ``events`` with ``queue_score_events`` in batches of 256; returns the seconds taken."""
        records = [
            InputRecord("leads.scores.v1", 0, i, e.lead_id.encode(), e.model_dump_json().encode())
            for i, e in enumerate(events)
        ]
        cache = SubscriptionCache(store)
        queued = 0
        started = time.perf_counter()
        for start in range(0, len(records), BATCH):
            result = await queue_score_events(records[start : start + BATCH], cache, store)
            queued += result.queued
        elapsed = time.perf_counter() - started
        if queued != len(records):
            raise RuntimeError(
                f"queued {queued} deliveries for {len(records)} events with one subscription"
            )
        return elapsed

    async def queue_run(self, events: list[LeadScored]) -> dict[str, Any]:
        """queue_score_events on ``events``; its rate and where the time went."""
        store, client, prefix = await self.subscribed_store(4)
        try:
            own0 = own_cpu_s()
            elapsed = await self.queue(store, events)
            own = own_cpu_s() - own0
            return {"events": len(events), "elapsed_s": elapsed, "per_s": len(events) / elapsed,
                    "this_process_cores": round(own / elapsed, 2)}  # fmt: skip
        finally:
            await client.aclose()
            await self.cleanup(prefix)

    async def rpush_run(self, events: list[LeadScored]) -> dict[str, Any]:
        """Baseline of queueing: the same bytes RPUSHed per lead, one pipeline per batch."""
        prefix = self.prefix()
        values = [(e.lead_id, e.model_dump_json().encode()) for e in events]
        try:
            started = time.perf_counter()
            for start in range(0, len(values), BATCH):
                pipe = self.admin.pipeline(transaction=False)
                for lead, value in values[start : start + BATCH]:
                    pipe.rpush(f"{prefix}plain:{lead}", value)
                await pipe.execute()
            elapsed = time.perf_counter() - started
            return {"events": len(events), "elapsed_s": elapsed, "per_s": len(events) / elapsed}
        finally:
            await self.cleanup(prefix)

    async def deliver_run(
        self,
        events: list[LeadScored],
        concurrency: int,
        timeout_s: float,
        profile: cProfile.Profile | None = None,
    ) -> dict[str, Any]:
        """Queue ``events``, then time the deliverer draining them to the receiver; checked."""
        store, client, prefix = await self.subscribed_store(concurrency)
        dead_letters: list[bytes] = []

        async def send(topic: str, key: bytes, value: bytes) -> None:
            dead_letters.append(value)

        try:
            queue_s = await self.queue(store, events)
            settings = Settings(
                webhook_allowed_networks="127.0.0.0/8", webhook_concurrency=concurrency
            )
            deliverer = WebhookDeliverer(store, DeliveryPolicy.from_settings(settings), send)

            lost_cancels = 0

            async def work() -> None:
                nonlocal lost_cancels
                if profile is not None:
                    profile.enable()
                try:
                    lost_cancels = await drain_watched(deliverer, store, timeout_s)
                finally:
                    if profile is not None:
                        profile.disable()

            run = await timed(self.admin, self.receiver, work)
            got = run.pop("received")
            backlog = await store.backlog()
            stats = await store.stats()
        finally:
            await client.aclose()
            await self.cleanup(prefix)
        check = check_received(got["ids"], [e.id for e in events], ordered=True)
        check.update(
            verified=got["verified"], bad_signature=got["bad_signature"], unsigned=got["unsigned"],
            id_mismatch=got["id_mismatch"], backlog_left=backlog, dead_letters=len(dead_letters),
            delivered_in_redis=stats.get("webhook_deliveries_delivered", 0),
            attempts_failed=stats.get("webhook_attempts_failed", 0),
        )  # fmt: skip
        check["ok"] = bool(
            check["ok"] and got["verified"] == len(events) and not got["bad_signature"]
            and not got["unsigned"] and not got["id_mismatch"] and backlog == 0 and not dead_letters
            and check["delivered_in_redis"] == len(events) and not check["attempts_failed"]
        )  # fmt: skip
        return {
            "method": "deliverer",
            "drain_lost_cancel": lost_cancels,
            "events": len(events),
            "per_s": len(events) / run["elapsed_s"],
            "receiver_span_per_s": _span_rate(got),
            "queue_per_s": len(events) / queue_s,
            **run,
            "check": check,
        }

    async def plain_run(
        self, kind: str, events: list[LeadScored], concurrency: int
    ) -> dict[str, Any]:
        """Baseline: ``concurrency`` tasks POSTing the same bodies, unsigned, straight to the receiver."""
        bodies = [(e.id, envelope_body(e)) for e in events]
        url = self.receiver.url
        failures = 0
        next_index = 0

        def take() -> tuple[str, bytes] | None:
            nonlocal next_index
            if next_index >= len(bodies):
                return None
            next_index += 1
            return bodies[next_index - 1]

        async def with_httpx(client: httpx.AsyncClient) -> None:
            nonlocal failures
            while (item := take()) is not None:
                response = await client.post(url, content=item[1], headers={
                    "content-type": "application/json", "webhook-id": item[0]})  # fmt: skip
                failures += response.status_code != 200

        async def with_aiohttp(session: Any) -> None:
            nonlocal failures
            while (item := take()) is not None:
                async with session.post(url, data=item[1], headers={
                    "content-type": "application/json", "webhook-id": item[0]}) as response:  # fmt: skip
                    await response.read()
                    failures += response.status != 200

        if kind == "httpx":
            clients = [
                httpx.AsyncClient(timeout=10.0, trust_env=False, follow_redirects=False,
                                  limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                for _ in range(concurrency)
            ]  # fmt: skip

            async def work() -> None:
                await asyncio.gather(*(with_httpx(c) for c in clients))

            try:
                run = await timed(self.admin, self.receiver, work)
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
        elif kind == "aiohttp":
            import aiohttp

            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency),
                timeout=aiohttp.ClientTimeout(total=10),
            )

            async def work() -> None:
                await asyncio.gather(*(with_aiohttp(session) for _ in range(concurrency)))

            try:
                run = await timed(self.admin, self.receiver, work)
            finally:
                await session.close()
        else:
            raise ValueError(f"baseline {kind!r}: expected 'httpx' or 'aiohttp'")
        got = run.pop("received")
        check = check_received(got["ids"], [e.id for e in events], ordered=False)
        check.update(failures=failures, id_mismatch=got["id_mismatch"])
        check["ok"] = bool(check["ok"] and not failures and not got["id_mismatch"])
        return {
            "method": f"{kind} baseline",
            "events": len(events),
            "per_s": len(events) / run["elapsed_s"],
            "receiver_span_per_s": _span_rate(got),
            **run,
            "check": check,
        }


async def drain_watched(deliverer: WebhookDeliverer, store: WebhookStore, timeout_s: float) -> int:
    """``deliverer.drain(timeout_s)``; if it hangs once nothing is queued, unstick it.

    ``drain`` cancels its ``run()`` task and waits for it. On Python 3.11 that cancellation
    is sometimes lost: redis-py sends each command under ``asyncio.wait_for`` (it has a
    ``socket_timeout``), and 3.11's ``wait_for`` swallows a cancellation that arrives as
    the command's send completes (CPython gh-86296, fixed in 3.12). ``run()`` then keeps
    polling and ``drain`` never returns. Here ``run()`` is cancelled again 2 s after the
    backlog was seen empty. Returns how many times that was needed: the caller discards
    such a run's timing (it includes the wait) and runs it again.
    """
    task = asyncio.create_task(deliverer.drain(timeout_s))
    emptied_at: float | None = None
    lost = 0
    while not task.done():
        await asyncio.wait({task}, timeout=0.25)
        if task.done():
            break
        if emptied_at is None:
            if await store.backlog() == 0:
                emptied_at = time.monotonic()
        elif time.monotonic() - emptied_at > 2.0:
            for other in asyncio.all_tasks():
                if getattr(other.get_coro(), "__qualname__", "") == "WebhookDeliverer.run":
                    other.cancel()
                    lost += 1
            emptied_at = time.monotonic()
    await task
    return lost


def _span_rate(got: dict[str, Any]) -> float | None:
    """Requests/s between the receiver's first and last request of a run."""
    n = len(got["ids"])
    span_s = (got["last_ns"] - got["first_ns"]) / 1e9
    return (n - 1) / span_s if n > 1 and span_s > 0 else None


# --- the whole run -------------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace, receiver: Receiver, secret: str) -> dict[str, Any]:
    bench = Bench(args.redis, receiver, secret)
    results: dict[str, Any] = {"queueing": [], "delivery": [], "one_lead": []}
    try:
        # Queueing: queue_score_events against a plain RPUSH pipeline, alternating.
        events = make_events("q", args.queue_leads, max(1, args.queue_events // args.queue_leads))
        for r in range(args.rounds):
            order = ["queue", "rpush"] if r % 2 == 0 else ["rpush", "queue"]
            for what in order:
                row = await (
                    bench.queue_run(events) if what == "queue" else bench.rpush_run(events)
                )
                row.update(
                    method="queue_score_events" if what == "queue" else "RPUSH pipeline", round=r
                )
                results["queueing"].append(row)
                _progress(row)

        async def one_setting(
            key: str, events: list[LeadScored], deliver_c: int, plain_c: int
        ) -> None:
            for r in range(args.rounds):
                order = ["deliverer", *args.baselines]
                if r % 2:
                    order.reverse()
                for method in order:
                    if method == "deliverer":
                        for _ in range(3):  # a run whose drain() hung is timed wrong: run it again
                            row = await bench.deliver_run(events, deliver_c, args.timeout_s)
                            if not row["drain_lost_cancel"]:
                                break
                            row.update(concurrency=deliver_c, round=r, discarded=True)
                            results.setdefault("discarded", []).append(row)
                            _progress(row)
                    else:
                        row = await bench.plain_run(method, events, plain_c)
                    row.update(concurrency=deliver_c if method == "deliverer" else plain_c, round=r)
                    results[key].append(row)
                    _progress(row)

        per_lead = max(1, args.events // args.leads)
        for c in args.concurrency:
            await one_setting("delivery", make_events(f"c{c}", args.leads, per_lead), c, c)
        if args.one_lead_events:
            await one_setting("one_lead", make_events("one", 1, args.one_lead_events), 32, 1)

        if args.cprofile_top:
            profile = cProfile.Profile()
            row = await bench.deliver_run(
                make_events("prof", args.leads, per_lead), 32, args.timeout_s, profile
            )
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.cprofile_top)
            results["cprofile"] = {"concurrency": 32, "per_s_under_profile": row["per_s"],
                                   "check_ok": row["check"]["ok"], "text": text.getvalue()}  # fmt: skip
    finally:
        left = await bench.cleanup()
        results["keys_deleted_at_end"] = left
        await bench.admin.aclose()
    return results


def _progress(row: dict[str, Any]) -> None:
    ok = row.get("check", {}).get("ok", True)
    print(f"  {row['method']:<20} c={row.get('concurrency', '-'):<4} {row['events']:>6} events  "
          f"{row['per_s']:>8,.0f}/s  cpu {row.get('cpu_cores', row.get('this_process_cores'))}"
          f"{'  (drain hung: discarded)' if row.get('discarded') else ''}"
          f"{'' if ok else '  CHECK FAILED: ' + json.dumps(row['check'])}",
          file=sys.stderr, flush=True)  # fmt: skip


def best(rows: list[dict[str, Any]], method: str, **match: Any) -> dict[str, Any] | None:
    """The fastest row of ``method`` (with the given fields) over the rounds."""
    found = [r for r in rows if r["method"] == method and not r.get("discarded")
             and all(r.get(k) == v for k, v in match.items())]  # fmt: skip
    return max(found, key=lambda r: r["per_s"]) if found else None


def cpu_us_each(row: dict[str, Any]) -> float:
    """CPU of this process per event (µs): the deliverer's or the baseline client's own cost."""
    return row["cpu_cores"]["this_process"] / row["per_s"] * 1e6


def summary_rows(args: argparse.Namespace, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: each measure beside its baselines, best of the rounds."""
    rows: list[dict[str, Any]] = []
    queue, rpush = (
        best(results["queueing"], "queue_score_events"),
        best(results["queueing"], "RPUSH pipeline"),
    )
    if queue and rpush:
        rows.append({"measure": f"queue_score_events, {queue['events']:,} events in batches of {BATCH}",
                     "unit": "events/s", "value": queue["per_s"],
                     "baselines": {"RPUSH pipeline, same bytes": {"per_s": rpush["per_s"]}}})  # fmt: skip
    per_lead = max(1, args.events // args.leads)
    for key, label, settings in (
        ("delivery", f"{args.leads * per_lead:,} events over {args.leads} leads",
         [(c, c) for c in args.concurrency]),
        ("one_lead", f"{args.one_lead_events:,} events of one lead", [(32, 1)]),
    ):  # fmt: skip
        for deliver_c, plain_c in settings:
            mine = best(results[key], "deliverer", concurrency=deliver_c)
            if mine is None:
                continue
            rows.append({
                "measure": f"delivery, {label}, concurrency {deliver_c}"
                + (" (strictly one at a time)" if key == "one_lead" else ""),
                "unit": "deliveries/s",
                "value": mine["per_s"],
                "cpu_cores": mine["cpu_cores"],
                "cpu_us_each": cpu_us_each(mine),
                "baselines": {
                    f"{b}, concurrency {plain_c}": {"per_s": r["per_s"], "cpu_cores": r["cpu_cores"],
                                                    "cpu_us_each": cpu_us_each(r)}
                    for b in args.baselines if (r := best(results[key], f"{b} baseline", concurrency=plain_c))
                },
            })  # fmt: skip
    return rows


def _ratio(mine: float, base: float) -> str:
    return f"{base / mine:.1f}x slower" if mine < base else f"{mine / base:.1f}x faster"


def print_table(info: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    sniffio = info["versions"]["sniffio"] or "not installed"
    print(f"\nmachine: {info['cores']} cores, {info['cpu']}, python {info['python']}, "
          f"load {info['loadavg_1m_at_start']} at start; sniffio {sniffio}")  # fmt: skip
    print("\n| measure | leadscore | baseline (same run) | ratio |\n|---|---|---|---|")
    for row in rows:
        for name, base in row["baselines"].items():
            print(f"| {row['measure']} | {row['value']:,.0f} {row['unit']} | {name}: {base['per_s']:,.0f}/s "
                  f"| {_ratio(row['value'], base['per_s'])} |")  # fmt: skip
    print(
        "\nCPU of this process per delivery (the deliverer, or the baseline client), µs; and cores used "
        "while delivering (this process / receiver / redis-server / whole machine)\n"
    )
    print("| measure | deliverer µs | cores | baseline: µs, cores |\n|---|---|---|---|")
    for row in rows:
        if "cpu_cores" not in row:
            continue
        cores = " / ".join(str(v) for v in row["cpu_cores"].values())
        bases = "; ".join(
            f"{name.split(',')[0]}: {b['cpu_us_each']:,.0f} µs, "
            + " / ".join(str(v) for v in b["cpu_cores"].values())
            for name, b in row["baselines"].items()
        )
        print(f"| {row['measure']} | {row['cpu_us_each']:,.0f} | {cores} | {bases} |")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("httpx", "httpcore", "aiohttp", "redis", "standardwebhooks", "sniffio", "uvloop"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="URL of the Redis to use"
    )
    parser.add_argument("--events", type=int, default=3000, help="events per delivery run")
    parser.add_argument("--leads", type=int, default=500, help="leads they are spread over")
    parser.add_argument(
        "--concurrency", default="8,32,128", help="webhook_concurrency values, one run each"
    )
    parser.add_argument(
        "--one-lead-events", type=int, default=1000, help="events of the one-lead run (0: skip)"
    )
    parser.add_argument(
        "--queue-events", type=int, default=20_000, help="events of the queueing run"
    )
    parser.add_argument("--queue-leads", type=int, default=5000, help="leads of the queueing run")
    parser.add_argument(
        "--baselines", default="httpx,aiohttp", help="plain clients to compare with"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each method; the best is reported"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=600.0, help="give up a drain after this long"
    )
    parser.add_argument(
        "--cprofile-top", type=int, default=0, help="also profile one delivery run at C=32"
    )
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.port, os.environ["WEBHOOK_BENCH_SECRET"])
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.baselines = [b for b in args.baselines.split(",") if b]

    info = machine() | {"versions": versions()}
    secret = generate_secret()
    receiver = start_receiver(secret)
    try:
        results = asyncio.run(run_all(args, receiver, secret))
    finally:
        receiver.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            receiver.process.wait(10)
        if receiver.process.poll() is None:
            receiver.process.kill()
    rows = summary_rows(args, results)
    print_table(info, rows)
    if "cprofile" in results:
        print(
            f"\ncProfile of one delivery run at concurrency 32 "
            f"({results['cprofile']['per_s_under_profile']:,.0f}/s under the profiler):"
        )
        print(results["cprofile"]["text"])
    failed = [r for key in ("delivery", "one_lead") for r in results[key] if not r["check"]["ok"]]
    for r in failed:
        print(
            f"CHECK FAILED: {r['method']} c={r['concurrency']}: {json.dumps(r['check'])}",
            file=sys.stderr,
        )
    if not failed:
        print(
            "\nchecks: every delivery run delivered each event exactly once, in order per lead, "
            "every signature verified; the baselines delivered each body exactly once"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "args": vars(args) | {"json": str(args.json)},
                                         "summary": rows, "runs": results}, indent=2, default=str))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
