"""The dashboard's Overview with 100 to 100,000 scored leads and a busy live feed, in a real browser.

Does the dashboard stay smooth with 10,000+ leads and a busy feed? Everything is the real
thing, on one machine:

- **Redis**: ``--redis`` (default the server at ``redis://127.0.0.1:6379/0``), every key under
  a fresh prefix (``bench-dash-<random>:``), deleted at the end, also after a failure or Ctrl-C.
- **broker**: the embedded Tansu broker (:func:`leadscore.infra.embedded.servers.embedded_services`),
  its topics made by :func:`leadscore.infra.kafka.client.ensure_topics`.
- **API**: ``python -m leadscore api`` (:func:`leadscore.infra.launch.start_api`) on a free port,
  serving the built dashboard: a copy of ``dashboard/dist`` taken at the start
  (``LEADSCORE_DASHBOARD_DIR`` = the copy; others may rebuild dist meanwhile), with an admin key
  made by :class:`leadscore.infra.access.KeyStore`. No worker: this script writes what the
  worker would write.
- **browser**: Debian's ``/usr/bin/chromium`` (headless, 1366x900) driven by Playwright,
  signed in by opening ``http://127.0.0.1:PORT/#key=KEY``.

Leads: for each of ``--sizes`` (ascending; the first, 100 by default, is the baseline) the
leads are topped up to N in Redis with :meth:`ScoreStore.write_batch` (the worker's pipeline
writes: ``score:<id>``, ``leaderboard``, ``history:<id>``, ``stats``), each a valid
:class:`~leadscore.schemas.scores.LeadScored` (probability ~ Beta(2, 4), 5 reasons with labels
from :func:`~leadscore.models.features.vector.describe`, 3 changes, fit/engagement components over
the real factor families). ``state:<id>`` is not written: the Overview never reads it.

Per N (each browser figure from a fresh browser context: no cache, a new tab):

- **first row**: from navigation start to the first ``[data-testid="leaderboard-row"]`` in the
  DOM (a MutationObserver installed before the page's scripts, ``performance.now()``),
  median of ``--loads`` page loads;
- **1,000 rows**: the leaderboard is server-paged (100 rows per page, ‹ Prev / Next ›) and
  virtualized inside a page; a user scrolls each page to its bottom one viewport per step
  (two animation frames per step) and clicks Next, until 1,000 rows (or all of them) went by.
  Reported per 100 rows, and the most rows rendered at once while scrolling;
- **to the last page**: the UI has no "last page" control, so Next is clicked until it is
  disabled; each click is timed until the first row's rank is the next page's (in the page,
  a MutationObserver). Capped at ``--walk-cap-s``; beyond the cap the time is extrapolated
  from the median click (marked ``~``);
- **JS heap** (CDP ``Performance.getMetrics`` ``JSHeapUsedSize`` after
  ``HeapProfiler.collectGarbage``) after the load and after the walk to the last page
  (React Query keeps every visited page for its gcTime); **DOM elements**
  (``document.getElementsByTagName('*')``) and **rows rendered**;
- **API** (httpx from this process, sequential, ``--api-reps`` after 3 warm-ups, median):
  ``GET /v1/leads/top?offset=0&limit=100``, ``offset=N-100``, ``GET /v1/leads/distribution?bins=20``
  (as the dashboard asks it; skipped with a note if the route answers 404).

Feed burst, at the largest N: the Overview open in a fresh context, the feed ``live``, then
for ``--burst-s`` seconds score events (score changes of random seeded leads, with their
``previous_score`` and ``changes``) are published to the API's scores topic with an aiokafka
producer at each of ``--rates`` events/s, and written to Redis as the worker would (one
``write_batch`` per 50 ms tick). The baseline is the same page for the same time with no
burst (rate 0). Measured in the page over the burst window: long tasks (PerformanceObserver
``longtask``: count, total ms), main-thread busy fraction (CDP ``TaskDuration`` / wall time),
animation frames per second and the longest gap between two frames, score messages the page's
WebSocket received and ``dropped`` counts the server sent, ``[data-testid="change-item"]``
shown, whether ``[data-testid="feed-status"]`` stayed ``live`` (sampled every 100 ms), and
how long after the last publish the page had received (or been told it lost) every event
(drain). CPU: the renderer processes' own CPU time (CDP ``SystemInfo.getProcessInfo``; unlike
"busy", it leaves out time the OS kept the renderer waiting for a core), the API's process
tree and the machine's: they all share the cores with chromium.

``--profile`` (default on, off with ``--quick``): one more burst at the highest rate under the
CDP CPU profiler (1 ms sampling), not in the table; its time is printed per dashboard source
line or npm package, mapped through the hidden source maps of a second build of the same
sources into a temporary directory (matched by Vite's content-hashed file name), and the
``.cpuprofile`` is saved in ``--out-dir`` (open it in Chrome DevTools).

Usage::

    .venv/bin/python benchmarks/dashboard_scale.py                  # ~10-15 min on 2 cores
    .venv/bin/python benchmarks/dashboard_scale.py --quick          # N = 100, 10,000; 200/s for 5 s
    .venv/bin/python benchmarks/dashboard_scale.py --sizes 100,10000 --rates 200,1000 --json out.json

Build the dashboard first (``cd dashboard && npx vite build``); the script says how old the
build is against the newest source file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.processes import stop_child
from leadscore.infra.embedded.servers import embedded_services
from leadscore.infra.kafka.client import client_options, ensure_topics
from leadscore.infra.launch import start_api
from leadscore.infra.redis_store import ScoreStore
from leadscore.models.features.state import FAMILY_OF_TYPE
from leadscore.models.features.vector import FEATURE_FAMILY, describe
from leadscore.schemas.scores import LeadScored, Reason, ReasonChange, ScoreComponents
from leadscore.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dashboard" / "dist"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1366, "height": 900}
SEED_BATCH = 1000  # leads per write_batch while seeding
TICK_S = 0.05  # the burst publishes and writes once per tick
MODEL_VERSION = "20261127T120000-bench"
FIT_FAMILIES = {"demographic", "quality"}
ROW = '[data-testid="leaderboard-row"]'

#: Installed before the page's own scripts: first-row time, long tasks, frames, the feed's
#: WebSocket messages, feed-status samples. Everything lands in ``window.__bench``.
INIT_SCRIPT = r"""
(() => {
  const b = window.__bench = {firstRowMs: null, longtasks: [], frames: [], wsScores: 0, wsDropped: 0,
                              wsLastScoreAt: 0, statuses: []};
  const seen = () => {
    if (b.firstRowMs === null && document.querySelector('[data-testid="leaderboard-row"]')) {
      b.firstRowMs = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {childList: true, subtree: true});
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({type: 'longtask', buffered: true});
  } catch (e) { b.longtaskError = String(e); }
  const frame = (t) => { b.frames.push(t); if (b.frames.length > 20000) b.frames.shift(); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (m) => {
        const s = typeof m.data === 'string' ? m.data : '';
        if (s.includes('"type":"score"') || s.includes('"type": "score"')) { b.wsScores++; b.wsLastScoreAt = performance.now(); }
        else if (s.includes('dropped')) { try { b.wsDropped += Number(JSON.parse(s).count) || 0; } catch (e) {} }
      });
    }
  };
  setInterval(() => {
    const el = document.querySelector('[data-testid="feed-status"]');
    b.statuses.push([performance.now(), el ? el.className : '']);
    if (b.statuses.length > 5000) b.statuses.shift();
  }, 100);
})();
"""

#: Scroll each page of the leaderboard to its bottom, one viewport per step, then Next,
#: until ``rows`` rows went by. Returns the time, rows seen and the most rows rendered at once.
SCROLL_JS = r"""
async ({rows}) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const scroller = document.querySelector('.lb-scroll');
  const next = () => document.querySelector('button[aria-label="Next page"]');
  const rank = () => { const el = document.querySelector('[data-testid="leaderboard-row"] .lb-rank');
                       return el ? parseInt(el.textContent.replace(/\D/g, ''), 10) : NaN; };
  const waitRank = (want) => new Promise((resolve, reject) => {
    const board = document.querySelector('[data-testid="leaderboard"]');
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('rank ' + want + ' never shown')); }, 30000);
    const check = () => { if (rank() === want) { obs.disconnect(); clearTimeout(timer); resolve(); } };
    const obs = new MutationObserver(check);
    obs.observe(board, {subtree: true, childList: true, characterData: true});
    check();
  });
  const ranks = () => [...document.querySelectorAll('[data-testid="leaderboard-row"] .lb-rank')]
    .map((el) => parseInt(el.textContent.replace(/\D/g, ''), 10));
  const t0 = performance.now();
  let seen = 0, maxRendered = 0, steps = 0;
  while (seen < rows) {
    scroller.scrollTop = 0;
    await frame();
    const pageFirst = Math.min(...ranks());
    let pageLast = Math.max(...ranks());
    while (scroller.scrollTop + scroller.clientHeight < scroller.scrollHeight - 1) {
      scroller.scrollTop += scroller.clientHeight;
      await frame(); await frame();
      steps++;
      const now = ranks();
      maxRendered = Math.max(maxRendered, now.length);
      pageLast = Math.max(pageLast, ...now);
    }
    seen += pageLast - pageFirst + 1;
    if (seen >= rows || next().disabled) break;
    next().click();
    await waitRank(pageFirst + 100);
  }
  return {ms: performance.now() - t0, rows: seen, maxRendered, steps};
}
"""

#: Click Next until it is disabled (or ``capMs`` passed); each click timed until the first
#: row shows the next page's first rank.
WALK_JS = r"""
async ({capMs}) => {
  const next = () => document.querySelector('button[aria-label="Next page"]');
  const rank = () => { const el = document.querySelector('[data-testid="leaderboard-row"] .lb-rank');
                       return el ? parseInt(el.textContent.replace(/\D/g, ''), 10) : NaN; };
  const board = document.querySelector('[data-testid="leaderboard"]');
  const waitRank = (want) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error('rank ' + want + ' never shown')); }, 30000);
    const check = () => { if (rank() === want) { obs.disconnect(); clearTimeout(timer); resolve(); } };
    const obs = new MutationObserver(check);
    obs.observe(board, {subtree: true, childList: true, characterData: true});
    check();
  });
  document.querySelector('.lb-scroll').scrollTop = 0;
  const t0 = performance.now();
  const times = [];
  while (!next().disabled && performance.now() - t0 < capMs) {
    const want = rank() + 100;
    const s = performance.now();
    next().click();
    await waitRank(want);
    times.push(performance.now() - s);
  }
  return {ms: performance.now() - t0, times, done: next().disabled, lastRank: rank(),
          range: document.querySelector('[data-testid="leaderboard-range"]').textContent};
}
"""


# --- machine ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    """``lscpu``'s model name (``/proc/cpuinfo``'s if lscpu is missing)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name"):
                return line.split(":", 1)[1].strip()
    return str(machine()["cpu"])


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (Linux)."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def build_age(dist: Path) -> str:
    """How the built dashboard compares with its newest source file."""
    index = dist / "index.html"
    if not index.is_file():
        raise SystemExit(
            f"{index} is missing: build the dashboard first (cd dashboard && npx vite build)"
        )
    sources = [p for p in (REPO / "dashboard" / "src").rglob("*") if p.is_file()]
    newest = max(sources, key=lambda p: p.stat().st_mtime)
    built = index.stat().st_mtime
    when = datetime.fromtimestamp(built, UTC).strftime("%H:%M:%S UTC")
    if newest.stat().st_mtime > built:
        return f"built {when}, OLDER than {newest.relative_to(REPO)} (rebuild: cd dashboard && npx vite build)"
    return f"built {when}, newer than every file in dashboard/src"


# --- score events ----------------------------------------------------------------------------------

_FEATURES = tuple(FEATURE_FAMILY)
_COUNT_FEATURES = {
    "page_views",
    "high_intent_page_views",
    "email_opens",
    "email_clicks",
    "calls",
    "meetings",
    "demo_requests",
    "form_submits",
    "downloads",
    "distinct_assets",
    "social_engagements",
    "referrals",
    "activities",
    "active_days_30d",
}


def _feature_value(rng: random.Random, feature: str) -> float:
    if "=" in feature or feature == "has_profile":
        return 1.0
    if feature in _COUNT_FEATURES:
        return float(rng.randint(1, 12))
    if feature == "company_size_log10":
        return round(rng.uniform(0.5, 4.5), 3)
    if feature == "seniority_rank":
        return float(rng.randint(0, 5))
    if feature.endswith("_rate") or feature == "contact_completeness":
        return round(rng.random(), 3)
    return round(rng.uniform(0.5, 60.0), 2)


def _label(feature: str, value: float) -> str:
    try:
        return describe(feature, value)
    except (KeyError, ValueError, IndexError):
        return feature.replace("_", " ")


def grade_of(score: int) -> str:
    return "A" if score >= 80 else "B" if score >= 60 else "C" if score >= 40 else "D"


def score_event(
    rng: random.Random, lead_id: str, probability: float, at: datetime, previous: int | None = None
) -> LeadScored:
    """A valid score event with 5 reasons, 3 changes (if ``previous``) and components."""
    score = min(100, max(0, int(probability * 100 + 0.5)))
    base = 28.0
    features = rng.sample(_FEATURES, 8)
    raw = [rng.gauss(0, 6) for _ in features]
    shift = (probability * 100 - base - sum(raw)) / len(
        raw
    )  # base + all points = 100 x probability
    points = [r + shift for r in raw]
    values = [_feature_value(rng, f) for f in features]
    order = sorted(range(len(features)), key=lambda i: -abs(points[i]))
    reasons = [
        Reason(
            feature=features[i],
            label=_label(features[i], values[i]),
            value=values[i],
            contribution=round(points[i], 3),
        )
        for i in order[:5]
    ]
    families: dict[str, float] = {}
    for f, p in zip(features, points, strict=True):
        families[FEATURE_FAMILY[f]] = round(families.get(FEATURE_FAMILY[f], 0.0) + p, 3)
    fit = round(sum(v for k, v in families.items() if k in FIT_FAMILIES), 3)
    changes = []
    if previous is not None:
        for i in order[:3]:
            delta = round(rng.uniform(-6, 6), 3)
            changes.append(
                ReasonChange(
                    feature=features[i],
                    label=_label(features[i], values[i]),
                    contribution=round(points[i], 3),
                    previous_contribution=round(points[i] - delta, 3),
                    delta=delta,
                )
            )
    cause_type = rng.choice(tuple(FAMILY_OF_TYPE))
    return LeadScored(
        id=f"{lead_id}:{secrets.token_hex(6)}",
        lead_id=lead_id,
        score=score,
        probability=round(probability, 6),
        grade=grade_of(score),
        previous_score=previous,
        previous_grade=grade_of(previous) if previous is not None else None,
        model_version=MODEL_VERSION,
        base_score=base,
        reasons=reasons,
        changes=changes,
        components=ScoreComponents(
            fit=fit, engagement=round(sum(families.values()) - fit, 3), families=families
        ),
        cause_event_id=f"evt-{secrets.token_hex(8)}",
        cause_event_type=cause_type,
        event_time=at,
        scored_at=at + timedelta(milliseconds=rng.randint(20, 400)),
    )


def body_of(event: LeadScored) -> bytes:
    """The event as the worker publishes and stores it."""
    return orjson.dumps(event.model_dump(mode="json"))


@dataclass
class Seeded:
    """What this run put in Redis: lead id -> current score, and how long seeding took."""

    scores: dict[str, int]
    seed_s: float = 0.0
    event_bytes: int = 0


async def seed_to(store: ScoreStore, seeded: Seeded, n: int, rng: random.Random) -> None:
    """Top the leads up to ``n`` (ids ``lead-0000000``...), written as the worker writes them."""
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    start = len(seeded.scores)
    total_bytes = 0
    for lo in range(start, n, SEED_BATCH):
        events, bodies = [], []
        for i in range(lo, min(n, lo + SEED_BATCH)):
            p = min(0.999, max(0.001, rng.betavariate(2, 4)))
            event = score_event(
                rng, f"lead-{i:07d}", p, now - timedelta(seconds=rng.uniform(60, 86_400))
            )
            events.append(event)
            bodies.append(body_of(event))
            seeded.scores[event.lead_id] = event.score
        total_bytes += sum(map(len, bodies))
        await store.write_batch(events, bodies, {"events": len(events) * 7, "scores": len(events)})
    if n > start:
        seeded.event_bytes = total_bytes // (n - start)
    seeded.seed_s = time.perf_counter() - t0


def burst_events(rng: random.Random, seeded: Seeded, count: int) -> list[tuple[LeadScored, bytes]]:
    """``count`` score changes of random seeded leads (each moving 3-12 points from its last score)."""
    ids = list(seeded.scores)
    out = []
    now = datetime.now(UTC)
    current = dict(seeded.scores)
    for _ in range(count):
        lead = rng.choice(ids)
        before = current[lead]
        after = min(100, max(0, before + rng.choice((-1, 1)) * rng.randint(3, 12)))
        if after == before:
            after = min(100, before + 3)
        event = score_event(rng, lead, after / 100, now, previous=before)
        current[lead] = event.score
        out.append((event, body_of(event)))
    return out


# --- the page --------------------------------------------------------------------------------------


@dataclass
class Tab:
    context: BrowserContext
    page: Page
    cdp: CDPSession

    async def metrics(self, gc: bool = False) -> dict[str, float]:
        if gc:
            await self.cdp.send("HeapProfiler.collectGarbage")
        got = await self.cdp.send("Performance.getMetrics")
        return {m["name"]: m["value"] for m in got["metrics"]}

    async def dom(self) -> dict[str, int]:
        result: dict[str, int] = await self.page.evaluate(
            "() => ({elements: document.getElementsByTagName('*').length,"
            " rows: document.querySelectorAll('[data-testid=\"leaderboard-row\"]').length,"
            " changes: document.querySelectorAll('[data-testid=\"change-item\"]').length})"
        )
        return result

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.context.close()


async def open_overview(browser: Browser, base_url: str, key: str) -> tuple[Tab, float]:
    """A new context and tab on the Overview, signed in; returns it and the first-row time (ms)."""
    context = await browser.new_context(viewport=VIEWPORT)
    await context.add_init_script(INIT_SCRIPT)
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")
    tab = Tab(context, page, cdp)
    try:
        await page.goto(f"{base_url}/#key={key}", wait_until="commit")
        await page.wait_for_selector(ROW, state="visible", timeout=60_000)
        first_ms = await page.evaluate("() => window.__bench.firstRowMs")
    except BaseException:
        await tab.close()
        raise
    return tab, float(first_ms)


# --- measurements -------------------------------------------------------------------------------


async def api_latency(client: httpx.AsyncClient, path: str, reps: int) -> float | None:
    """Median ms of ``reps`` sequential GETs (after 3 warm-ups); ``None`` if the route is missing."""
    for _ in range(3):
        response = await client.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - t0) * 1e3)
        response.raise_for_status()
    return statistics.median(times)


async def measure_size(
    browser: Browser,
    base_url: str,
    key: str,
    n: int,
    args: argparse.Namespace,
    http: httpx.AsyncClient,
) -> dict[str, Any]:
    row: dict[str, Any] = {"leads": n}
    # --- API ---
    row["api_top0_ms"] = await api_latency(http, "/v1/leads/top?offset=0&limit=100", args.api_reps)
    row["api_top_end_ms"] = await api_latency(
        http, f"/v1/leads/top?offset={max(0, n - 100)}&limit=100", args.api_reps
    )
    row["api_dist_ms"] = await api_latency(http, "/v1/leads/distribution?bins=20", args.api_reps)
    # --- page loads ---
    firsts = []
    for _ in range(args.loads):
        tab, first_ms = await open_overview(browser, base_url, key)
        firsts.append(first_ms)
        await tab.close()
    row["first_row_ms"] = statistics.median(firsts)
    row["first_row_all"] = [round(f) for f in firsts]
    tab, _ = await open_overview(browser, base_url, key)
    try:
        await tab.page.wait_for_timeout(args.settle_s * 1000)
        m = await tab.metrics(gc=True)
        dom = await tab.dom()
        row["heap_mb"] = m["JSHeapUsedSize"] / 2**20
        row["dom_elements"] = dom["elements"]
        row["rows_rendered"] = dom["rows"]
        scroll = await tab.page.evaluate(SCROLL_JS, {"rows": 1000})
        row["scroll_rows"] = scroll["rows"]
        row["scroll_ms"] = scroll["ms"]
        row["scroll_ms_per_100"] = scroll["ms"] / max(1, scroll["rows"]) * 100
        row["scroll_max_rendered"] = scroll["maxRendered"]
        # a fresh tab for the walk, so it starts on page 1 like a user arriving
        await tab.close()
        tab, _ = await open_overview(browser, base_url, key)
        await tab.page.wait_for_timeout(1000)
        walk = await tab.page.evaluate(WALK_JS, {"capMs": args.walk_cap_s * 1000})
        clicks_needed = max(0, -(-n // 100) - 1)
        times = walk["times"]
        row["walk_clicks_needed"] = clicks_needed
        row["walk_clicks_done"] = len(times)
        row["walk_click_ms"] = statistics.median(times) if times else None
        row["walk_click_p95_ms"] = sorted(times)[int(0.95 * (len(times) - 1))] if times else None
        row["walk_done"] = bool(walk["done"])
        row["walk_s"] = (
            walk["ms"] / 1e3
            if walk["done"]
            else (clicks_needed * statistics.median(times) / 1e3 if times else None)
        )
        row["walk_range"] = walk["range"]
        m2 = await tab.metrics(gc=True)
        dom2 = await tab.dom()
        row["heap_after_walk_mb"] = m2["JSHeapUsedSize"] / 2**20
        row["dom_elements_after_walk"] = dom2["elements"]
        row["rows_rendered_after_walk"] = dom2["rows"]
    finally:
        await tab.close()
    return row


async def renderer_cpu_s(browser: Browser) -> float:
    """CPU seconds of the browser's renderer processes so far (CDP ``SystemInfo.getProcessInfo``).

    Unlike the main thread's busy time this excludes the time the OS kept the renderer off
    the CPU, which on a busy 2-core machine is most of a long task's wall time.
    """
    session = await browser.new_browser_cdp_session()
    try:
        info = await session.send("SystemInfo.getProcessInfo")
    finally:
        await session.detach()
    return sum(p["cpuTime"] for p in info["processInfo"] if p["type"] == "renderer")


async def measure_burst(
    browser: Browser,
    base_url: str,
    key: str,
    rate: int,
    args: argparse.Namespace,
    settings: Settings,
    store: ScoreStore,
    seeded: Seeded,
    api_pid: int,
    rng: random.Random,
    profile: bool = False,
) -> dict[str, Any]:
    events = burst_events(rng, seeded, int(rate * args.burst_s)) if rate else []
    tab, _ = await open_overview(browser, base_url, key)
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5, acks=1)
    await producer.start()
    try:
        await tab.page.wait_for_selector('[data-testid="feed-status"].live', timeout=30_000)
        await tab.page.wait_for_timeout(args.settle_s * 1000)
        if profile:
            await tab.cdp.send("Profiler.enable")
            await tab.cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
            await tab.cdp.send("Profiler.start")
        m0 = await tab.metrics()
        r0 = await renderer_cpu_s(browser)
        t_page0 = await tab.page.evaluate("() => performance.now()")
        api0, box0, w0 = tree_cpu_s(api_pid), machine_busy(), time.monotonic()
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while True:
            elapsed = loop.time() - start
            if elapsed >= args.burst_s:
                break
            due = min(len(events), int(rate * (elapsed + TICK_S)))
            batch = events[sent:due]
            if batch:
                for event, body in batch:
                    await producer.send(settings.scores_topic, body, key=event.lead_id.encode())
                await store.write_batch(
                    [e for e, _ in batch], [b for _, b in batch], {"scores": len(batch)}
                )
                for event, _ in batch:
                    seeded.scores[event.lead_id] = event.score
                sent = due
            await asyncio.sleep(max(0.0, start + elapsed + TICK_S - loop.time()))
        await producer.flush()
        wall = time.monotonic() - w0
        t_page1 = await tab.page.evaluate("() => performance.now()")
        m1 = await tab.metrics()
        r1 = await renderer_cpu_s(browser)
        api1, box1 = tree_cpu_s(api_pid), machine_busy()
        cpu_profile = (await tab.cdp.send("Profiler.stop"))["profile"] if profile else None
        # drain: until the page received every published event (or 20 s)
        drain_t0 = time.monotonic()
        received = 0
        while time.monotonic() - drain_t0 < 20:
            received, dropped = await tab.page.evaluate(
                "() => [window.__bench.wsScores, window.__bench.wsDropped]"
            )
            if received + dropped >= sent:  # what the server dropped for this page never comes
                break
            await asyncio.sleep(0.1)
        drain_s = time.monotonic() - drain_t0
        await tab.page.wait_for_timeout(600)  # two flushes of the feed's 250 ms buffer
        bench = await tab.page.evaluate(
            "([a, b]) => { const B = window.__bench;"
            " const lt = B.longtasks.filter(([s, d]) => s >= a && s < b);"
            " const fr = B.frames.filter((t) => t >= a && t < b);"
            " let gap = 0; for (let i = 1; i < fr.length; i++) gap = Math.max(gap, fr[i] - fr[i - 1]);"
            " const st = B.statuses.filter(([t]) => t >= a && t < b).map(([, c]) => c);"
            " return {longtasks: lt.length, longtaskMs: lt.reduce((s, [, d]) => s + d, 0),"
            "  longtaskMax: lt.reduce((s, [, d]) => Math.max(s, d), 0), frames: fr.length, maxGap: gap,"
            "  statuses: st.length, notLive: st.filter((c) => !c.includes('live')).length,"
            "  wsScores: B.wsScores, wsDropped: B.wsDropped, longtaskError: B.longtaskError || null,"
            "  feedStat: (document.querySelector('[data-testid=\"stat-feed-rate\"]')?.parentElement?.innerText || '')"
            "    .replace(/\\s+/g, ' ')}; }",
            [t_page0, t_page1],
        )
        dom = await tab.dom()
        m2 = await tab.metrics(gc=True)
    finally:
        await producer.stop()
        await tab.close()
    page_wall = (t_page1 - t_page0) / 1e3
    return {
        "rate": rate,
        "published": sent,
        "published_per_s": sent / wall,
        "received": received,
        "dropped": bench["wsDropped"],
        "drain_s": drain_s if sent else 0.0,
        "change_items": dom["changes"],
        "rows_rendered": dom["rows"],
        "dom_elements": dom["elements"],
        "longtasks": bench["longtasks"],
        "longtask_ms": bench["longtaskMs"],
        "longtask_max_ms": bench["longtaskMax"],
        "busy": (m1["TaskDuration"] - m0["TaskDuration"]) / page_wall,
        "script_s": m1["ScriptDuration"] - m0["ScriptDuration"],
        "fps": bench["frames"] / page_wall,
        "max_frame_gap_ms": bench["maxGap"],
        "status_samples": bench["statuses"],
        "not_live_samples": bench["notLive"],
        "heap_mb": m2["JSHeapUsedSize"] / 2**20,
        "feed_stat": bench["feedStat"],
        "renderer_cores": (r1 - r0) / page_wall,
        "api_cores": (api1 - api0) / wall,
        "machine_cores": (box1[0] - box0[0]) / (box1[1] - box0[1]) * (os.cpu_count() or 1),
        "longtask_error": bench["longtaskError"],
        "cpu_profile": cpu_profile,
    }


# --- where the page's time goes (--profile) ------------------------------------------------------

_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def decode_mappings(mappings: str) -> list[list[tuple[int, int, int, int]]]:
    """A source map's ``mappings`` per generated line: (column, source index, line, column), 0-based."""
    lines: list[list[tuple[int, int, int, int]]] = []
    src = src_line = src_col = 0
    for text in mappings.split(";"):
        col, segments = 0, []
        for seg in text.split(","):
            if not seg:
                continue
            values, value, shift = [], 0, 0
            for ch in seg:
                digit = _B64[ch]
                value += (digit & 31) << shift
                shift += 5
                if not digit & 32:
                    values.append(-(value >> 1) if value & 1 else value >> 1)
                    value = shift = 0
            col += values[0]
            if len(values) >= 4:
                src, src_line, src_col = src + values[1], src_line + values[2], src_col + values[3]
                segments.append((col, src, src_line, src_col))
        lines.append(segments)
    return lines


@dataclass
class SourceMap:
    """One built JS file's hidden source map, to name profile frames by source file and line."""

    sources: list[str]
    contents: list[str | None]
    lines: list[list[tuple[int, int, int, int]]]

    @classmethod
    def load(cls, path: Path) -> SourceMap:
        raw = json.loads(path.read_text())
        return cls(
            raw["sources"],
            raw.get("sourcesContent") or [None] * len(raw["sources"]),
            decode_mappings(raw["mappings"]),
        )

    def where(self, line: int, column: int) -> tuple[str, int, str] | None:
        """(source, 1-based line, that line's text) of a generated position."""
        if line >= len(self.lines) or not self.lines[line]:
            return None
        segments = self.lines[line]
        lo, hi = 0, len(segments)
        while lo < hi:  # last segment at or before the column
            mid = (lo + hi) // 2
            if segments[mid][0] <= column:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return None
        _, src, src_line, _ = segments[lo - 1]
        text = ""
        content = self.contents[src] if src < len(self.contents) else None
        if content:
            source_lines = content.splitlines()
            text = source_lines[src_line].strip() if src_line < len(source_lines) else ""
        return self.sources[src], src_line + 1, text


def sourcemaps_for_dist(workdir: Path, served: Path) -> dict[str, SourceMap]:
    """Hidden source maps of a second build of the same sources, for each served JS file it matches.

    ``vite build --sourcemap hidden`` into ``workdir`` (dashboard/dist is left alone); Vite names
    files by content hash, so a file of the same name as one in ``served`` is the same code.
    """
    out = workdir / "dist-maps"
    done = subprocess.run(
        [
            "npx",
            "vite",
            "build",
            "--sourcemap",
            "hidden",
            "--outDir",
            str(out),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
        cwd=REPO / "dashboard",
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        print(
            f"  profile: the source-map build failed, frames stay minified:\n{done.stderr[-1500:]}",
            flush=True,
        )
        return {}
    maps = {}
    for js in (out / "assets").glob("*.js"):
        if (served / "assets" / js.name).is_file() and (
            out / "assets" / f"{js.name}.map"
        ).is_file():
            maps[js.name] = SourceMap.load(out / "assets" / f"{js.name}.map")
    if not maps:
        print(
            "  profile: dashboard/dist was built from other sources than today's: frames stay minified "
            "(rebuild it)",
            flush=True,
        )
    return maps


def frame_key(call_frame: dict[str, Any], maps: dict[str, SourceMap]) -> str:
    """A profile frame as 'src/file.tsx:line  text', 'package', or '(native name)'."""
    url = call_frame.get("url") or ""
    name = call_frame.get("functionName") or "(anonymous)"
    if not url:
        return f"({name})" if not name.startswith("(") else name
    file = url.rsplit("/", 1)[-1].split("?", 1)[0]
    found = (
        maps[file].where(call_frame["lineNumber"], call_frame["columnNumber"])
        if file in maps
        else None
    )
    if found is None:
        return f"{file}:{call_frame['lineNumber'] + 1}:{call_frame['columnNumber'] + 1} {name}"
    source, line, text = found
    if "node_modules/" in source:
        parts = source.split("node_modules/", 1)[1].split("/")
        return parts[0] if not parts[0].startswith("@") else "/".join(parts[:2])
    source = source.split("src/", 1)[-1] if "src/" in source else source
    return f"src/{source}:{line}  {text[:70]}"


def profile_summary(profile: dict[str, Any], maps: dict[str, SourceMap], top: int = 14) -> str:
    """Inclusive and self time per source line (dashboard/src) or package, from a CDP CPU profile."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parent = {child: node["id"] for node in profile["nodes"] for child in node.get("children", [])}
    keys = {nid: frame_key(node["callFrame"], maps) for nid, node in nodes.items()}
    inclusive: dict[str, float] = {}
    self_ms: dict[str, float] = {}
    total = 0.0
    for nid, delta in zip(profile["samples"], profile["timeDeltas"], strict=False):
        ms = delta / 1e3
        total += ms
        self_ms[keys[nid]] = self_ms.get(keys[nid], 0.0) + ms
        seen, at = set(), nid
        while at is not None:
            seen.add(keys[at])
            at = parent.get(at)
        for key in seen:
            inclusive[key] = inclusive.get(key, 0.0) + ms
    skip = {"(root)", "(idle)", "(program)"}
    busy = total - sum(self_ms.get(k, 0.0) for k in ("(idle)",))
    lines = [
        f"  profile: {total / 1e3:.1f} s sampled, {busy / 1e3:.1f} s not idle",
        "  inclusive ms (a frame counts once per sample; dashboard source lines and packages):",
    ]
    for key, ms in sorted(
        ((k, v) for k, v in inclusive.items() if k not in skip), key=lambda kv: -kv[1]
    )[:top]:
        lines.append(f"    {ms:8.0f}  {key}")
    files: dict[str, float] = {}
    for key, ms in inclusive.items():
        if key.startswith("src/"):
            file = key.split(":", 1)[0]
            files[file] = max(files.get(file, 0.0), ms)
    lines.append("  dashboard files (their busiest function, inclusive ms):")
    for file, ms in sorted(files.items(), key=lambda kv: -kv[1])[:8]:
        lines.append(f"    {ms:8.0f}  {file}")
    lines.append("  self ms:")
    for key, ms in sorted(
        ((k, v) for k, v in self_ms.items() if k not in skip), key=lambda kv: -kv[1]
    )[:top]:
        lines.append(f"    {ms:8.0f}  {key}")
    return "\n".join(lines)


# --- report ----------------------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return ""
    return f" ({value / base:.2f}×)"


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "—" if value is None else format(value, spec)


def size_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = [
        f"Leaderboard size (ratios vs N={base['leads']:,} in this run)",
        "",
        "| leads | first row ms | scroll ms / 100 rows (rows) | rows rendered: idle / max scrolling / after walk "
        "| Next click ms p50 / p95 | to last page: clicks, s | JS heap MB: loaded / after walk | DOM elements "
        "| API top offset 0 ms | API top offset N-100 ms | API distribution ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        walk = (
            f"{r['walk_clicks_needed']:,}, {'' if r['walk_done'] else '~'}{fmt(r['walk_s'], '.1f')}"
            + ("" if r["walk_done"] else f" ({r['walk_clicks_done']} done)")
        )
        lines.append(
            f"| {r['leads']:,} | {r['first_row_ms']:.0f}{ratio(r['first_row_ms'], base['first_row_ms'])} "
            f"| {r['scroll_ms_per_100']:.0f}{ratio(r['scroll_ms_per_100'], base['scroll_ms_per_100'])} ({r['scroll_rows']:,}) "
            f"| {r['rows_rendered']} / {r['scroll_max_rendered']} / {r['rows_rendered_after_walk']} "
            f"| {fmt(r['walk_click_ms'])} / {fmt(r['walk_click_p95_ms'])} "
            f"| {walk} "
            f"| {r['heap_mb']:.1f}{ratio(r['heap_mb'], base['heap_mb'])} / {r['heap_after_walk_mb']:.1f} "
            f"| {r['dom_elements']:,}{ratio(r['dom_elements'], base['dom_elements'])} "
            f"| {fmt(r['api_top0_ms'], '.1f')}{ratio(r['api_top0_ms'], base['api_top0_ms'])} "
            f"| {fmt(r['api_top_end_ms'], '.1f')}{ratio(r['api_top_end_ms'], base['api_top_end_ms'])} "
            f"| {fmt(r['api_dist_ms'], '.1f')}{ratio(r['api_dist_ms'], base['api_dist_ms'])} |"
        )
    if any(r["api_dist_ms"] is None for r in rows):
        lines.append("\nGET /v1/leads/distribution answered 404: not measured.")
    return "\n".join(lines)


def burst_table(rows: list[dict[str, Any]], n: int, burst_s: float) -> str:
    base = rows[0]
    lines = [
        f"Feed burst on the Overview, {n:,} leads, {burst_s:.0f} s per run (ratios vs no burst in this run)",
        "",
        "| events/s asked | published/s (achieved) | received by page (dropped) | drain s | change items "
        "| long tasks: count, total ms, max ms | main thread busy | frames/s, worst gap ms | feed live "
        "| renderer CPU cores | JS heap MB | API CPU cores | machine cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        live = f"{r['status_samples'] - r['not_live_samples']}/{r['status_samples']}"
        lines.append(
            f"| {r['rate'] or 'none'} | {r['published_per_s']:.0f} | {r['received']:,} ({r['dropped']:,}) "
            f"| {r['drain_s']:.1f} | {r['change_items']} "
            f"| {r['longtasks']}, {r['longtask_ms']:.0f}, {r['longtask_max_ms']:.0f} "
            f"| {r['busy']:.0%}{ratio(r['busy'], base['busy'])} "
            f"| {r['fps']:.0f}{ratio(r['fps'], base['fps'])}, {r['max_frame_gap_ms']:.0f} "
            f"| {live} | {r['renderer_cores']:.2f}{ratio(r['renderer_cores'], base['renderer_cores'])} "
            f"| {r['heap_mb']:.1f}{ratio(r['heap_mb'], base['heap_mb'])} "
            f"| {r['api_cores']:.2f} | {r['machine_cores']:.2f} |"
        )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=ints,
        default=[100, 10_000, 100_000],
        help="leads in the leaderboard, ascending; the first is the baseline",
    )
    parser.add_argument(
        "--rates", type=ints, default=[200, 1000], help="feed bursts, score events per second"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 100,10000, rate 200 for 5 s, 1 load, 20 s walk cap (unless given)",
    )
    parser.add_argument(
        "--burst-s",
        type=float,
        default=10.0,
        help="seconds per burst (and of the no-burst baseline)",
    )
    parser.add_argument(
        "--loads", type=int, default=3, help="page loads per size for the first-row time"
    )
    parser.add_argument(
        "--walk-cap-s",
        type=float,
        default=60.0,
        help="longest walk to the last page; beyond it the time is extrapolated",
    )
    parser.add_argument("--api-reps", type=int, default=30)
    parser.add_argument(
        "--settle-s", type=float, default=2.0, help="wait after a page is loaded before measuring"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out-dir", type=Path, default=REPO / "artifacts" / "bench" / "dashboard")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dist",
        type=Path,
        default=DIST,
        help="the built dashboard to serve (default dashboard/dist); e.g. an older build "
        "to compare with",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one more burst at the highest rate under the CPU profiler, its time by dashboard "
        "source line (default: on, off with --quick)",
    )
    args = parser.parse_args()
    if args.quick:
        given = set(sys.argv[1:])
        if "--sizes" not in given:
            args.sizes = [100, 10_000]
        if "--rates" not in given:
            args.rates = [200]
        if "--burst-s" not in given:
            args.burst_s = 5.0
        if "--loads" not in given:
            args.loads = 1
        if "--walk-cap-s" not in given:
            args.walk_cap_s = 20.0
        if "--api-reps" not in given:
            args.api_reps = 10
    args.sizes = sorted(set(args.sizes))
    if args.profile is None:
        args.profile = not args.quick
    if not Path(CHROMIUM).is_file():
        raise SystemExit(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        )

    # Ctrl-C and SIGTERM clean up too (SIGINT explicitly: a shell starting us in the
    # background hands it down ignored, and asyncio only handles it when it is the default).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    info = machine()
    model = cpu_model()
    print(
        f"machine: {info['cores']} cores, {model}, python {info['python']}, "
        f"load {info['loadavg_1m_at_start']} at start (1 min average)",
        flush=True,
    )
    print(f"dashboard: {args.dist} {build_age(args.dist)}", flush=True)
    print(f"command: benchmarks/dashboard_scale.py {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-dash-{secrets.token_hex(4)}:"

    def drop_keys() -> None:
        client = redis.Redis.from_url(args.redis)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
            for lo in range(0, len(keys), 5000):
                client.unlink(*keys[lo : lo + 5000])
            print(f"cleanup: deleted {len(keys):,} Redis keys under {prefix}", flush=True)
        finally:
            client.close()

    size_rows: list[dict[str, Any]] = []
    burst_rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        services = stack.enter_context(embedded_services(None, args.redis))
        stack.callback(drop_keys)  # registered before anything is written
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dash-")))
        # A copy of dashboard/dist is served: others rebuild dist while this runs, and every
        # figure must come from the same build.
        served = tmp / "dist"
        shutil.copytree(args.dist, served)
        bundles = ", ".join(sorted(p.name for p in (served / "assets").glob("*.js")))
        print(f"serving a copy of dashboard/dist: {bundles}", flush=True)
        settings = Settings(
            kafka_bootstrap=services.kafka_bootstrap,
            redis_url=services.redis_url,
            redis_prefix=prefix,
            model_dir=tmp / "models",
            api_jobs_dir=tmp / "jobs",
            api_host="127.0.0.1",
            api_port=free_port(),
            dashboard_dir=served,
        )
        asyncio.run(ensure_topics(settings))

        async def make_key() -> str:
            client = aioredis.Redis.from_url(settings.redis_url)
            try:
                return (await KeyStore(client, prefix).create("bench-dashboard", ["admin"]))[0]
            finally:
                await client.aclose()

        key = asyncio.run(make_key())
        # the source maps first: the sources may change under us (dashboard/dist must match them)
        maps = sourcemaps_for_dist(tmp, served) if args.profile else {}
        log = args.out_dir / "api.log"
        log.write_bytes(b"")
        api = start_api(settings, log)  # from the main thread: it dies with us
        stack.callback(stop_child, api, 10.0)
        base_url = f"http://127.0.0.1:{settings.api_port}"
        print(
            f"services: broker {services.kafka_bootstrap}, Redis {settings.redis_url} prefix {prefix}, "
            f"API pid {api.pid} at {base_url} (log {log})",
            flush=True,
        )

        async def run() -> None:
            rng = random.Random(args.seed)
            client = aioredis.Redis.from_url(settings.redis_url)
            store = ScoreStore(client, prefix, settings.history_length)
            seeded = Seeded(scores={})
            try:
                async with (
                    async_playwright() as p,
                    httpx.AsyncClient(
                        base_url=base_url, headers={"X-API-Key": key}, timeout=60, trust_env=False
                    ) as http,
                ):
                    browser = await p.chromium.launch(
                        executable_path=CHROMIUM, args=["--no-sandbox"]
                    )
                    try:
                        print(
                            f"browser: chromium {browser.version} (headless), viewport "
                            f"{VIEWPORT['width']}x{VIEWPORT['height']}",
                            flush=True,
                        )
                        for n in args.sizes:
                            await seed_to(store, seeded, n, rng)
                            print(
                                f"N={n:,}: seeded in {seeded.seed_s:.1f} s (score events ~{seeded.event_bytes:,} "
                                f"bytes); measuring",
                                flush=True,
                            )
                            row = await measure_size(browser, base_url, key, n, args, http)
                            size_rows.append(row)
                            print(
                                f"  first row {row['first_row_ms']:.0f} ms {row['first_row_all']}, "
                                f"scroll {row['scroll_rows']} rows {row['scroll_ms']:.0f} ms "
                                f"(max {row['scroll_max_rendered']} rows rendered), "
                                f"walk {row['walk_clicks_done']}/{row['walk_clicks_needed']} clicks "
                                f"p50 {fmt(row['walk_click_ms'])} ms -> {row['walk_range']!r}, "
                                f"heap {row['heap_mb']:.1f} -> {row['heap_after_walk_mb']:.1f} MB, "
                                f"DOM {row['dom_elements']} -> {row['dom_elements_after_walk']}, "
                                f"API top0 {fmt(row['api_top0_ms'], '.1f')} end {fmt(row['api_top_end_ms'], '.1f')} "
                                f"dist {fmt(row['api_dist_ms'], '.1f')} ms",
                                flush=True,
                            )
                        for rate in [0, *args.rates]:
                            row = await measure_burst(
                                browser,
                                base_url,
                                key,
                                rate,
                                args,
                                settings,
                                store,
                                seeded,
                                api.pid,
                                rng,
                            )
                            burst_rows.append(row)
                            print(
                                f"  burst {rate or 'none'}/s: published {row['published']} "
                                f"({row['published_per_s']:.0f}/s), page got {row['received']} "
                                f"(dropped {row['dropped']}), {row['longtasks']} long tasks "
                                f"{row['longtask_ms']:.0f} ms, busy {row['busy']:.0%}, renderer CPU {row['renderer_cores']:.2f} cores, "
                                f"{row['fps']:.0f} fps "
                                f"(worst gap {row['max_frame_gap_ms']:.0f} ms), "
                                f"live {row['status_samples'] - row['not_live_samples']}/{row['status_samples']}, "
                                f"feed card {row['feed_stat']!r}"
                                + (
                                    f", longtask observer: {row['longtask_error']}"
                                    if row["longtask_error"]
                                    else ""
                                ),
                                flush=True,
                            )
                        if args.profile and args.rates:
                            rate = max(args.rates)
                            print(
                                f"profiled burst (not in the table): {rate}/s, {args.burst_s:.0f} s, "
                                f"sampling every 1 ms",
                                flush=True,
                            )
                            row = await measure_burst(
                                browser,
                                base_url,
                                key,
                                rate,
                                args,
                                settings,
                                store,
                                seeded,
                                api.pid,
                                rng,
                                profile=True,
                            )
                            path = args.out_dir / f"burst-{rate}.cpuprofile"
                            path.write_text(json.dumps(row["cpu_profile"]))
                            print(
                                f"  {row['longtasks']} long tasks {row['longtask_ms']:.0f} ms, busy {row['busy']:.0%} "
                                f"(under the profiler); profile saved to {path}",
                                flush=True,
                            )
                            print(profile_summary(row["cpu_profile"], maps), flush=True)
                    finally:
                        await browser.close()
            finally:
                await client.aclose()

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            print("interrupted: cleaning up", file=sys.stderr, flush=True)
            raise
        finally:
            if api.poll() is not None:
                print(f"the API exited {api.returncode}; its log: {log}", file=sys.stderr)

    if size_rows:
        print("\n" + size_table(size_rows))
    if burst_rows:
        print("\n" + burst_table(burst_rows, args.sizes[-1], args.burst_s))
    load_end = round(os.getloadavg()[0], 2)
    print(
        f"\nmachine: {info['cores']} cores, {model}; load average (1 min) at start "
        f"{info['loadavg_1m_at_start']}, at end {load_end}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": {**info, "cpu": model},
                    "loadavg_1m_at_end": load_end,
                    "command": "benchmarks/dashboard_scale.py " + " ".join(sys.argv[1:]),
                    "sizes": size_rows,
                    "bursts": [
                        {k: v for k, v in r.items() if k != "cpu_profile"} for r in burst_rows
                    ],
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # everything was stopped and deleted on the way out
