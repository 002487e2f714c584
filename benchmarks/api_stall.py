"""How long one big scoring request stalls an API process: /healthz latency meanwhile.

Sends ``POST /v1/score`` with one lead of ``--activities`` activities (and then
``POST /v1/score/batch`` of ``--batch-leads`` leads of ``--batch-activities`` each) to a
running ``leadscore api`` while another thread asks ``GET /healthz`` every 10 ms, and
reports the /healthz latencies seen while the big request ran (p50, p99, max) next to the
same probe on the idle server (the baseline of the same run).

Run a server first (``leadscore api`` with a key of scope ``score``), then::

    .venv/bin/python benchmarks/api_stall.py --url http://127.0.0.1:8000 --key lsk_...
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np


def lead(lead_id: str, n: int) -> dict[str, Any]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "lead_id": lead_id,
        "profile": {"company_size": 250, "industry": "software", "job_title": "VP Sales"},
        "activities": [
            {
                "type": "lead.page_viewed",
                "time": (start + timedelta(minutes=i)).isoformat(),
                "data": {"url": f"/pricing/{i % 7}", "duration_s": 30},
            }
            for i in range(n)
        ],
    }


def probe(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get("/healthz")
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)


def during(url: str, key: str, path: str, body: Any) -> tuple[list[float], float, int]:
    """/healthz latencies (ms) while ``body`` is scored; the request's own time and status."""
    stop, seen = threading.Event(), []
    thread = threading.Thread(target=probe, args=(url, stop, seen))
    thread.start()
    time.sleep(0.3)
    seen.clear()
    t0 = time.perf_counter()
    response = httpx.post(f"{url}{path}", json=body, headers={"X-API-Key": key}, timeout=300)
    took = time.perf_counter() - t0
    stop.set()
    thread.join()
    return seen, took, response.status_code


def summary(ms: list[float]) -> str:
    a = np.asarray(ms)
    return (
        f"{len(a):4d} probes  p50 {np.percentile(a, 50):7.1f}  p99 {np.percentile(a, 99):7.1f}"
        f"  max {a.max():7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("LEADSCORE_API_KEY", ""))
    parser.add_argument("--activities", type=int, default=10_000)
    parser.add_argument("--batch-leads", type=int, default=1000)
    parser.add_argument("--batch-activities", type=int, default=30)
    args = parser.parse_args()

    idle: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=probe, args=(args.url, stop, idle))
    thread.start()
    time.sleep(2.0)
    stop.set()
    thread.join()
    print(f"idle server, /healthz:                      {summary(idle)}")

    one = lead("stall-1", args.activities)
    seen, took, status = during(args.url, args.key, "/v1/score", one)
    print(
        f"POST /v1/score, {args.activities:,} activities ({status}, {took:.2f} s): {summary(seen)}"
    )
    batch = {"leads": [lead(f"stall-{i}", args.batch_activities) for i in range(args.batch_leads)]}
    seen, took, status = during(args.url, args.key, "/v1/score/batch", batch)
    print(
        f"POST /v1/score/batch, {args.batch_leads:,} x {args.batch_activities} "
        f"({status}, {took:.2f} s): {summary(seen)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
