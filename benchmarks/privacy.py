"""What personal-data protection costs: the worker with and without sealing at rest, and
how long erasure takes for one lead and for 10,000.

One run, on fresh topics of one broker (the embedded Tansu and redis-server unless given):

1. **Publish** ``--events`` simulated events over at least ``--leads`` leads.
2. **Catch-up, back to back**: ``python -m leadscore worker`` reads them all, alternately
   with ``LEADSCORE_ENCRYPT_AT_REST=true`` (the default: lead states sealed in the table and
   Redis, activity entries sealed) and ``false``, ``--rounds`` times each, every run with
   its own group, table and Redis keys. Events/s from "Ready" to Redis counting every event
   (as ``stream_throughput.py`` measures); reported side by side and as a ratio.
3. **Erasure**: with the last (sealing) worker still running and caught up, the time from
   asking (:func:`request_erasure`) to a complete receipt (every lead erased by the worker
   and its ``lead.erased`` queued for webhooks), for one lead, then for ``--erase`` leads in
   one request. The API's cache wait is not included (``LEADSCORE_API_CACHE_TTL_S`` on top).

Usage::

    .venv/bin/python benchmarks/privacy.py                   # ~4 min
    .venv/bin/python benchmarks/privacy.py --events 60000 --rounds 3 --erase 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from bench_common import ensure_model, machine
from stream_throughput import (
    DEFAULT_MODEL_DIR,
    CpuMeter,
    Worker,
    simulated_events,
    topic_settings,
    worker_settings,
    worker_throughput,
)

from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.servers import embedded_services
from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.kafka.publish import publish
from leadscore.infra.privacy.erasure import request_erasure, wait_for_erasure
from leadscore.settings import Settings


async def run(
    args: argparse.Namespace, kafka: str, redis_url: str, log_dir: Path
) -> dict[str, Any]:
    run_id = f"privacy-{secrets.token_hex(3)}"
    base = Settings(
        kafka_bootstrap=kafka, redis_url=redis_url, model_dir=args.model_dir, web_port=free_port()
    )
    inputs = topic_settings(base, f"{run_id}.")
    await ensure_topics(inputs)
    events = simulated_events(args.events, args.seed)
    leads = sorted({e["subject"] for e in events})
    pub = await publish(events, inputs, rate_per_s=None)
    print(f"published {pub.sent:,} events of {len(leads):,} leads in {pub.elapsed_s:.1f} s")
    client = aioredis.Redis.from_url(redis_url)
    results: dict[str, Any] = {"events": pub.sent, "leads": len(leads), "runs": []}
    keep: Worker | None = None
    try:
        order = [False, True] * args.rounds  # plain first, sealing last (kept for erasure)
        for i, sealing in enumerate(order):
            name = f"{'sealed' if sealing else 'plain'}-{i}"
            settings = worker_settings(inputs, f"{run_id}.{name}.", 3).model_copy(
                update={"encrypt_at_rest": sealing, "api_cache_ttl_s": 0.0}
            )
            worker = Worker(settings, log_dir, name, instrument=False, loglevel="info")
            try:
                res = await worker_throughput(
                    worker, client, pub.sent, 3, CpuMeter({"worker": worker.pid}), args.timeout
                )
            except BaseException:
                worker.stop()
                raise
            # The worker's own CPU per event: steadier than events/s on a busy machine.
            cpu_us = 1e6 * res.cpu.get("worker", 0.0) * res.seconds / max(1, pub.sent)
            print(
                f"worker {'sealing' if sealing else 'plain  '} run {i // 2 + 1}: "
                f"{res.events_per_s:,.0f} events/s ({res.seconds:.1f} s), worker CPU "
                f"{cpu_us:,.0f} µs/event; CPU {res.cpu}"
            )
            results["runs"].append(
                {"sealing": sealing, "events_per_s": res.events_per_s, "cpu_us": cpu_us}
            )
            if i == len(order) - 1:
                keep = worker
            else:
                worker.stop()
        sealed = [r["events_per_s"] for r in results["runs"] if r["sealing"]]
        plain = [r["events_per_s"] for r in results["runs"] if not r["sealing"]]
        results["median_sealing"] = statistics.median(sealed)
        results["median_plain"] = statistics.median(plain)
        results["ratio"] = round(results["median_sealing"] / results["median_plain"], 3)
        cpu_sealed = statistics.median(r["cpu_us"] for r in results["runs"] if r["sealing"])
        cpu_plain = statistics.median(r["cpu_us"] for r in results["runs"] if not r["sealing"])
        print(
            f"median: sealing {results['median_sealing']:,.0f} vs plain "
            f"{results['median_plain']:,.0f} events/s: ratio {results['ratio']}; worker CPU "
            f"{cpu_sealed:,.0f} vs {cpu_plain:,.0f} µs/event: ratio {cpu_sealed / cpu_plain:.3f}"
        )
        assert keep is not None
        settings = keep.settings
        rng_leads = leads[:]
        for n in (1, min(args.erase, len(rng_leads) - 1)):
            chosen, rng_leads = rng_leads[:n], rng_leads[n:]
            started = time.perf_counter()
            receipt = await request_erasure(
                settings, client, chosen, requested_by="benchmark", reason=None
            )
            asked = time.perf_counter() - started
            done = await wait_for_erasure(settings, client, receipt.id, timeout_s=args.timeout)
            took = time.perf_counter() - started
            if done.completed_at is None:
                raise SystemExit(
                    f"erasure of {n} leads not complete after {args.timeout} s: {done}"
                )
            results[f"erase_{n}_s"] = round(took, 2)
            print(
                f"erasure of {n:,} leads: complete in {took:.2f} s (request written in "
                f"{asked:.2f} s; {n / took:,.0f} leads/s); removed {done.removed}"
            )
    finally:
        if keep is not None:
            keep.stop()
        await client.aclose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=130_000, help="enough for --erase leads")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternating")
    parser.add_argument("--erase", type=int, default=10_000, help="leads in the big erasure")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--kafka", help="bootstrap servers (default: the embedded broker)")
    parser.add_argument("--redis", help="Redis URL (default: an embedded redis-server)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    info = machine()
    version = ensure_model(args.model_dir)
    print(f"machine: {info['cores']} cores, {info['cpu']}, load {os.getloadavg()}; model {version}")
    with contextlib.ExitStack() as stack:
        log_dir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="leadscore-privacy-"))
        )
        services = stack.enter_context(embedded_services(args.kafka, args.redis))
        asyncio.run(run(args, services.kafka_bootstrap, services.redis_url, log_dir))
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
