"""``POST /v1/score`` of ``leadscore api`` under load, beside the seed's design measured in the same run.

Servers (each a uvicorn process with the same settings: ``factory=True``, log level
warning, ``--workers`` processes, on 127.0.0.1):

- **leadscore**: ``python -m leadscore api`` (:func:`leadscore.infra.launch.start_api`) with the
  champion of ``--model-dir`` and ``LEADSCORE_MIN_TRAINING_LABELS=0`` (so the trained
  model scores, not the rules prior), an API key with scope ``score``. It answers with the
  score, grade, probability, exact TreeSHAP reasons and components.
- **seed**: ``benchmarks/seed_api.py``: the same JSON, the same feature vector
  (leadscore's ``build_state``/``to_vector``, or the stored state), then scikit-learn
  ``predict_proba`` of a soft ``VotingClassifier`` (RF + GB + LR, 40/40/20) made of the
  members the champion was trained with (its manifest's hyperparameters), on all 53
  features, fitted on a training set rebuilt from the manifest's simulator config and
  seed (the simulated span ends at the wall-clock time, so the rows differ a little: a
  few rows more or fewer than the champion's). **No explanation**; no API key.
- **seed+shap** (unless ``--no-shap``): the seed plus ``shap.TreeExplainer`` on the forest
  and the boosting per request (top 5 features by SHAP value).

Bodies: simulated leads (:mod:`leadscore.simulation.simulator`) with 10-30 activities each:

- ``body``: ``{"lead_id", "profile", "activities": [{"type", "time", "data"}, ...]}``;
- ``lead id``: ``{"lead_id"}`` only, scored from the state the worker keeps in Redis. The
  states are made by the worker's own code (:func:`leadscore.models.batch.processing.process_batch`
  over the same leads' events, then :func:`leadscore.infra.redis_store.public_state`), so
  they carry the last score and its points like the worker's.

Load: ``wrk`` (C, one thread by default, keep-alive connections, each sending its next
request when the previous answer arrived) with ``api_latency.lua``, which cycles through
the bodies and records each response's ``Server-Timing: app;dur=<ms>`` (the server's own
time, from the app's middleware to the response start). For each ``--concurrency``
(connections) and body kind, the servers take turns (the order flips every round), each
run preceded by a ``--warmup`` s run at the same concurrency, and by a wait until neither
server is still working off requests of an earlier run (wrk stops with up to one request
per connection in flight). wrk shares the 2 cores with the server: its CPU is reported
beside the server's.

Reported per run: answers with status 200 per second (errors are counted, not included);
client latency p50/p99 (wrk: all responses completed within the run; a request still in
flight when the run ends is not counted, which flatters a slow server at 500 clients);
server time p50/p99 (``Server-Timing``: under concurrency it includes the wait for the
event loop behind other requests whenever a request yields, e.g. on a Redis round trip);
the server's CPU per request (its capacity on one core, whatever the queueing); CPU of
the server, of wrk and of the whole machine (other work on the box shows there).

Usage::

    .venv/bin/python benchmarks/api_latency.py      # ~15 min (1, 50, 500 clients); or `make bench-api`
    .venv/bin/python benchmarks/api_latency.py --workers 2 --rounds 1 --json out.json
    .venv/bin/python benchmarks/api_latency.py --concurrency 500 --redis-max-connections 1024

Needs ``wrk`` on the PATH (Debian: ``apt-get install wrk``). Servers: the embedded Tansu
broker and redis-server, or ``--kafka HOST:PORT`` / ``--redis URL`` (a unique key prefix is
used and deleted after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from bench_common import ensure_model, machine
from sklearn.ensemble import VotingClassifier
from stream_throughput import machine_busy

from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.processes import spawn_child, stop_child
from leadscore.infra.embedded.servers import embedded_services
from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.launch import start_api
from leadscore.infra.redis_store import public_state
from leadscore.infra.scorer import load_scorer
from leadscore.jobs.train import TRAIN_SPAN_DAYS
from leadscore.models.batch.processing import process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.training.dataset import build_training_set
from leadscore.models.training.ensemble import make_member
from leadscore.schemas.decode import EventKind, kind_of
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL_DIR = Path("artifacts/bench/model")
DEFAULT_OUT_DIR = Path("artifacts/bench/api")
SERVERS = ("leadscore", "seed", "seed+shap")
KINDS = ("body", "lead id")
TOPIC_OF_KIND = {
    EventKind.ACTIVITY: "leads.activity.v1",
    EventKind.PROFILE: "leads.profile.v1",
    EventKind.OUTCOME: "leads.outcome.v1",
}
ACTIVITIES_PER_BODY = (10, 30)

#: wrk script: POST bodies from BENCH_BODIES (one JSON per line) round robin, each thread
#: from its own offset; collect every response's Server-Timing (ms) and status; write them
#: with wrk's latency percentiles (µs) and counts to BENCH_OUT as JSON.
LUA = r"""
local bodies_path, out_path, api_key = os.getenv("BENCH_BODIES"), os.getenv("BENCH_OUT"), os.getenv("BENCH_API_KEY")
local threads = {}
local reqs, n, i = {}, 0, 0
server_ms, statuses, missing = {}, {}, 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  if api_key ~= nil and api_key ~= "" then headers["X-API-Key"] = api_key end
  for line in io.lines(bodies_path) do
    n = n + 1
    reqs[n] = wrk.format("POST", wrk.path, headers, line)
  end
  i = (tid * 7919) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function response(status, headers, body)
  local st = headers["server-timing"] or headers["Server-Timing"]
  local dur = st and tonumber(string.match(st, "dur=([%d%.]+)"))
  if dur then server_ms[#server_ms + 1] = dur else missing = missing + 1 end
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local f = assert(io.open(out_path, "w"))
  local e = summary.errors
  f:write(string.format('{"requests": %d, "duration_us": %d, "bytes": %d, ', summary.requests, summary.duration, summary.bytes))
  f:write(string.format('"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ',
                        e.connect, e.read, e.write, e.status, e.timeout))
  f:write(string.format('"latency_us": {"mean": %f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}, ',
                        latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
                        latency:percentile(99), latency:percentile(99.9)))
  local all_ms, all_status, all_missing = {}, {}, 0
  for _, t in ipairs(threads) do
    for _, v in ipairs(t:get("server_ms")) do all_ms[#all_ms + 1] = string.format("%.3f", v) end
    for k, v in pairs(t:get("statuses")) do all_status[k] = (all_status[k] or 0) + v end
    all_missing = all_missing + t:get("missing")
  end
  local parts = {}
  for k, v in pairs(all_status) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
  f:write('"statuses": {' .. table.concat(parts, ", ") .. '}, ')
  f:write(string.format('"no_server_timing": %d, ', all_missing))
  f:write('"server_ms": [' .. table.concat(all_ms, ",") .. ']}')
  f:close()
end
"""


# --- CPU ---------------------------------------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every descendant alive now (Linux)."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def wait_idle(pid: int, timeout_s: float = 120.0, below_cores: float = 0.1) -> float:
    """Wait until the server has worked off the requests still queued when wrk stopped.

    wrk stops without waiting for its in-flight requests (up to one per connection), and a
    slow server can need seconds for them; the next run must not pay for them. Returns the
    seconds waited.
    """
    t0, quiet = time.monotonic(), 0
    while time.monotonic() - t0 < timeout_s and quiet < 2:  # two quiet windows in a row
        c0 = tree_cpu_s(pid)
        time.sleep(0.25)
        quiet = quiet + 1 if (tree_cpu_s(pid) - c0) / 0.25 < below_cores else 0
    return time.monotonic() - t0


def children_cpu_s() -> float:
    """CPU seconds of this process's children that have exited (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- the model baseline --------------------------------------------------------------------------


def seed_voting(model_dir: Path, version: str) -> tuple[VotingClassifier, dict[str, Any]]:
    """The seed's soft VotingClassifier, from the champion's members and training data.

    The members are :func:`leadscore.models.training.ensemble.make_member` with the manifest's
    hyperparameters (what the champion was fitted with), on all features (the seed did no
    feature selection); the rows are the training set rebuilt from the manifest's
    simulator config (``train_job``'s ``"simulated: N leads, seed S"``).
    """
    manifest = ModelRegistry(model_dir).manifest(version)
    match = re.fullmatch(r"simulated: (\d+) leads, seed (\d+)", manifest.source or "")
    if match is None:
        raise SystemExit(
            f"model {version} in {model_dir} was trained on {manifest.source!r}, not on simulated "
            "leads: the seed baseline cannot rebuild its training set; use another --model-dir"
        )
    leads, seed = int(match[1]), int(match[2])
    events = Simulator(SimConfig(n_leads=leads, span_days=TRAIN_SPAN_DAYS, seed=seed)).events()
    ts = build_training_set(events, horizon_days=30.0, seed=seed)
    params = manifest.params or {}
    random_state = int(params.get("random_state") or 0)
    members = [
        (kind, make_member(kind, params.get(f"{kind}_params"), seed=random_state, n_jobs=1))
        for kind in ("rf", "gb", "lr")
    ]
    voting = VotingClassifier(members, voting="soft", weights=[0.4, 0.4, 0.2])
    t0 = time.perf_counter()
    voting.fit(ts.X, ts.y)
    fit_s = time.perf_counter() - t0
    info = {
        "rows": int(len(ts.y)),
        "rows_in_manifest": manifest.n_rows,
        "features": int(ts.X.shape[1]),
        "fit_s": round(fit_s, 1),
        "members": {k: params.get(f"{k}_params") for k in ("rf", "gb", "lr")},
        "gb_stages": int(voting.named_estimators_["gb"].n_estimators_),
    }
    if manifest.n_rows is not None and manifest.n_rows != len(ts.y):
        print(
            f"  note: rebuilt {len(ts.y)} training rows, the manifest says {manifest.n_rows}",
            flush=True,
        )
    return voting, info


# --- leads: bodies and stored states ---------------------------------------------------------------


def simulated_leads(n_leads: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Each simulated lead's events, in event-time order."""
    by_lead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in Simulator(SimConfig(n_leads=n_leads, span_days=30.0, seed=seed)).events():
        by_lead[event["subject"]].append(event)
    return by_lead


def request_body(lead_id: str, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``POST /v1/score``'s body for a lead: merged profile and its activities (or ``None``)."""
    profile: dict[str, Any] = {}
    activities = []
    for event in events:
        kind = kind_of(event["type"])
        if kind == EventKind.PROFILE:
            profile.update(event["data"])
        elif kind == EventKind.ACTIVITY:
            activities.append(
                {"type": event["type"], "time": event["time"], "data": event.get("data") or {}}
            )
    low, high = ACTIVITIES_PER_BODY
    if not profile or not low <= len(activities) <= high:
        return None
    return {"lead_id": lead_id, "profile": profile, "activities": activities}


def worker_states(events: list[dict[str, Any]], settings: Settings) -> dict[str, bytes]:
    """Lead id -> the state JSON the worker would store in Redis after these events.

    Runs the worker's ``process_batch`` on 256-record batches (no broker), keeping states
    between batches as the worker's table does, with the scorer the API loads.
    """
    scorer = load_scorer(settings)
    table: dict[str, bytes] = {}
    kind_of_topic = {topic: kind for kind, topic in TOPIC_OF_KIND.items()}
    records = [
        InputRecord(
            topic=TOPIC_OF_KIND[kind_of(e["type"])],
            partition=0,
            offset=i,
            key=str(e["subject"]).encode(),
            value=orjson.dumps(e),
        )
        for i, e in enumerate(events)
    ]
    for start in range(0, len(records), 256):
        result = process_batch(
            records[start : start + 256],
            kind_of_topic=kind_of_topic,
            load_state=lambda lead_id: orjson.loads(table[lead_id]) if lead_id in table else None,
            scorer=scorer,
            limits=Limits(),
            now=datetime.now(UTC),
        )
        for lead_id, (state, _) in result.states.items():
            table[lead_id] = orjson.dumps(state.to_dict())
    return {lead_id: public_state(orjson.loads(raw)) for lead_id, raw in table.items()}


# --- servers --------------------------------------------------------------------------------------


def wait_http(url: str, child: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(
                f"{url}: the server exited {child.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(url, timeout=2):
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def post(url: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


# --- load -----------------------------------------------------------------------------------------


def run_wrk(
    url: str,
    bodies: Path,
    key: str | None,
    connections: int,
    seconds: float,
    threads: int,
    script: Path,
    out: Path,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_BODIES": str(bodies),
        "BENCH_OUT": str(out),
        "BENCH_API_KEY": key or "",
    }
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def measure(
    url: str,
    bodies: Path,
    key: str | None,
    connections: int,
    seconds: float,
    threads: int,
    script: Path,
    out: Path,
    server_pid: int,
    other_pids: list[int],
) -> dict[str, Any]:
    """One wrk run with the CPU of the server, of wrk, of the idle other servers and of the box."""
    cpu0, wrk0, other0, box0 = (
        tree_cpu_s(server_pid),
        children_cpu_s(),
        sum(map(tree_cpu_s, other_pids)),
        machine_busy(),
    )
    raw = run_wrk(url, bodies, key, connections, seconds, threads, script, out)
    cpu1, wrk1, other1, box1 = (
        tree_cpu_s(server_pid),
        children_cpu_s(),
        sum(map(tree_cpu_s, other_pids)),
        machine_busy(),
    )
    drain_s = wait_idle(server_pid)
    wall = raw["duration_us"] / 1e6
    server_ms = np.asarray(raw.pop("server_ms"), dtype=np.float64)
    lat = raw.pop("latency_us")
    ok = int(raw["statuses"].get("200", 0))
    row = {
        "requests": raw["requests"],
        "ok": ok,
        "rps": ok / wall,  # answers with status 200 per second: an error is not throughput
        "rps_all": raw["requests"] / wall,
        "client_mean_ms": lat["mean"] / 1e3,
        "client_p50_ms": lat["p50"] / 1e3,
        "client_p90_ms": lat["p90"] / 1e3,
        "client_p99_ms": lat["p99"] / 1e3,
        "client_max_ms": lat["max"] / 1e3,
        "server_p50_ms": float(np.percentile(server_ms, 50)) if server_ms.size else None,
        "server_p90_ms": float(np.percentile(server_ms, 90)) if server_ms.size else None,
        "server_p99_ms": float(np.percentile(server_ms, 99)) if server_ms.size else None,
        "server_max_ms": float(server_ms.max()) if server_ms.size else None,
        "statuses": raw["statuses"],
        "errors": raw["errors"],
        "no_server_timing": raw["no_server_timing"],
        "cpu_server": (cpu1 - cpu0) / wall,
        # the server's CPU per answered request: its cost without the wait for the event loop
        "cpu_ms_per_request": (cpu1 - cpu0) * 1e3 / raw["requests"] if raw["requests"] else None,
        "cpu_wrk": (wrk1 - wrk0) / wall,
        "cpu_idle_servers": (other1 - other0) / wall,
        "cpu_machine": (box1[0] - box0[0]) / (box1[1] - box0[1]) * (os.cpu_count() or 1)
        if box0 and box1
        else None,
        "drain_s": drain_s,
    }
    return row


# --- report -----------------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (workers, kind, concurrency, server): medians over rounds, and ratios to the seed per round."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[(r["workers"], r["kind"], r["concurrency"], r["server"])].append(r)
    out = []
    for (workers, kind, conc, server), rs in groups.items():
        seed_runs = {r["round"]: r for r in groups.get((workers, kind, conc, "seed"), [])}
        ratios = [r["rps"] / seed_runs[r["round"]]["rps"] for r in rs if r["round"] in seed_runs]
        med = lambda k: statistics.median(r[k] for r in rs if r[k] is not None)  # noqa: E731
        rng = lambda k: (min(r[k] for r in rs), max(r[k] for r in rs))  # noqa: E731
        out.append(
            {
                "workers": workers,
                "kind": kind,
                "concurrency": conc,
                "server": server,
                "rounds": len(rs),
                "rps": med("rps"),
                "rps_range": rng("rps"),
                "client_p50_ms": med("client_p50_ms"),
                "client_p99_ms": med("client_p99_ms"),
                "client_p99_range": rng("client_p99_ms"),
                "server_p50_ms": med("server_p50_ms"),
                "server_p99_ms": med("server_p99_ms"),
                "server_p99_range": rng("server_p99_ms"),
                "cpu_ms_per_request": med("cpu_ms_per_request"),
                "rps_vs_seed": statistics.median(ratios) if ratios else None,
                "cpu_server": med("cpu_server"),
                "cpu_wrk": med("cpu_wrk"),
                "cpu_idle_servers": med("cpu_idle_servers"),
                "cpu_machine": med("cpu_machine"),
                "not_200": sum(r["requests"] - r["ok"] for r in rs),
                "requests": sum(r["requests"] for r in rs),
            }
        )
    order = {s: i for i, s in enumerate(SERVERS)}
    out.sort(
        key=lambda s: (s["workers"], KINDS.index(s["kind"]), s["concurrency"], order[s["server"]])
    )
    return out


def markdown(summary: list[dict[str, Any]]) -> str:
    def span(lo_hi: tuple[float, float], fmt: str) -> str:
        lo, hi = lo_hi
        return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{lo:{fmt}}–{hi:{fmt}}"

    lines = [
        "| workers | body | clients | server | answers (200)/s | vs seed | client p50 / p99 ms | "
        "server time p50 / p99 ms | server CPU ms per request | CPU server / wrk / machine | not 200 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        vs = (
            f"{s['rps_vs_seed']:.2f}×"
            if s["rps_vs_seed"] is not None and s["server"] != "seed"
            else ""
        )
        errors = f"{s['not_200'] / s['requests']:.0%} of {s['requests']:,}" if s["not_200"] else "0"
        lines.append(
            f"| {s['workers']} | {s['kind']} | {s['concurrency']} | {s['server']} | "
            f"{s['rps']:,.0f} ({span(s['rps_range'], ',.0f')}) | {vs} | "
            f"{s['client_p50_ms']:.1f} / {s['client_p99_ms']:.1f} ({span(s['client_p99_range'], '.1f')}) | "
            f"{s['server_p50_ms']:.2f} / {s['server_p99_ms']:.2f} ({span(s['server_p99_range'], '.2f')}) | "
            f"{s['cpu_ms_per_request']:.2f} | "
            f"{s['cpu_server']:.2f} / {s['cpu_wrk']:.2f} / {s['cpu_machine']:.2f} | {errors} |"
        )
    return "\n".join(lines)


# --- the benchmark ----------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--concurrency",
        type=ints,
        default=[1, 50, 500],
        help="wrk connections, comma-separated (1: one client, no queueing in the server)",
    )
    parser.add_argument(
        "--workers", type=ints, default=[1], help="uvicorn worker processes, comma-separated"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured run")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before each measured run"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="measured runs per configuration (order flips)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--leads", type=int, default=1500, help="simulated leads to draw the bodies from"
    )
    parser.add_argument("--no-shap", action="store_true", help="leave out the seed+shap baseline")
    parser.add_argument("--kinds", default=",".join(KINDS), help="body kinds: 'body', 'lead id'")
    parser.add_argument(
        "--redis-max-connections",
        type=int,
        default=None,
        help="add ?max_connections=N to both servers' Redis URL (redis-py's asyncio pool "
        "defaults to 100 and fails a command beyond that at once)",
    )
    parser.add_argument("--kafka", default=None, help="use this broker instead of an embedded one")
    parser.add_argument("--redis", default=None, help="use this Redis instead of an embedded one")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="logs, bodies, the wrk script"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on the PATH; install it (Debian: apt-get install wrk)")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    servers = [s for s in SERVERS if not (args.no_shap and s == "seed+shap")]

    info = machine()
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, python {info['python']}, "
        f"load {info['loadavg_1m_at_start']} at start",
        flush=True,
    )
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    version = ensure_model(args.model_dir)
    print(f"model: {version} ({args.model_dir})", flush=True)
    voting, seed_info = seed_voting(args.model_dir, version)
    print(f"seed VotingClassifier: {seed_info}", flush=True)
    voting_path = out_dir / "seed_voting.pkl"
    voting_path.write_bytes(pickle.dumps(voting))

    script = out_dir / "api_latency.lua"
    script.write_text(LUA)
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        services = stack.enter_context(embedded_services(args.kafka, args.redis))
        prefix = f"bench-api-{secrets.token_hex(4)}:"
        server_redis_url = services.redis_url
        if args.redis_max_connections:
            sep = "&" if "?" in server_redis_url else "?"
            server_redis_url += f"{sep}max_connections={args.redis_max_connections}"
        settings = Settings(
            kafka_bootstrap=services.kafka_bootstrap,
            redis_url=server_redis_url,
            redis_prefix=prefix,
            model_dir=args.model_dir.resolve(),
            min_training_labels=0,
            api_host="127.0.0.1",
            api_jobs_dir=out_dir / "jobs",
        )
        asyncio.run(ensure_topics(settings))

        # --- the leads -------------------------------------------------------------------
        by_lead = simulated_leads(args.leads, seed=11)
        bodies = {
            lead_id: b
            for lead_id, events in by_lead.items()
            if (b := request_body(lead_id, events))
        }
        chosen_events = sorted(
            (e for lead_id in bodies for e in by_lead[lead_id]), key=lambda e: e["time"]
        )
        states = worker_states(chosen_events, settings)
        n_acts = [len(b["activities"]) for b in bodies.values()]
        body_bytes = [len(orjson.dumps(b)) for b in bodies.values()]
        state_bytes = [len(states[lead_id]) for lead_id in bodies]
        print(
            f"bodies: {len(bodies)} leads, {min(n_acts)}-{max(n_acts)} activities (mean {np.mean(n_acts):.1f}), "
            f"{np.mean(body_bytes):,.0f} bytes on average; stored states {np.mean(state_bytes):,.0f} bytes",
            flush=True,
        )
        body_files = {
            "body": out_dir / "bodies_full.jsonl",
            "lead id": out_dir / "bodies_id.jsonl",
        }
        body_files["body"].write_bytes(b"\n".join(orjson.dumps(b) for b in bodies.values()) + b"\n")
        body_files["lead id"].write_bytes(
            b"\n".join(orjson.dumps({"lead_id": i}) for i in bodies) + b"\n"
        )

        async def prepare() -> str:
            client = aioredis.Redis.from_url(services.redis_url)
            try:
                await client.mset(
                    {f"{prefix}state:{lead_id}": states[lead_id] for lead_id in bodies}
                )
                key, _ = await KeyStore(client, prefix).create("bench-api", ["score"])
                return key
            finally:
                await client.aclose()

        async def cleanup() -> None:
            client = aioredis.Redis.from_url(services.redis_url)
            try:
                keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
                if keys:
                    await client.unlink(*keys)
            finally:
                await client.aclose()

        api_key = asyncio.run(prepare())
        stack.callback(lambda: asyncio.run(cleanup()))

        for workers in args.workers:
            # --- start both servers ----------------------------------------------------------
            ls_settings = settings.model_copy(
                update={"api_port": free_port(), "api_workers": workers}
            )
            ls_log = out_dir / f"leadscore-api-w{workers}.log"
            ls_log.write_bytes(b"")
            leadscore_proc = start_api(ls_settings, ls_log)
            seed_port = free_port()
            seed_log = out_dir / f"seed-api-w{workers}.log"
            seed_log.write_bytes(b"")
            seed_env = {
                **os.environ,
                "SEED_API_MODEL": str(voting_path),
                "SEED_API_REDIS_URL": server_redis_url,
                "SEED_API_REDIS_PREFIX": prefix,
                "PYTHONUNBUFFERED": "1",
            }
            seed_proc = spawn_child(
                [
                    sys.executable,
                    str(HERE / "seed_api.py"),
                    "--port",
                    str(seed_port),
                    "--workers",
                    str(workers),
                ],
                seed_log,
                seed_env,
                Path.cwd(),
            )
            try:
                wait_http(f"http://127.0.0.1:{seed_port}/openapi.json", seed_proc, seed_log)
                base = {
                    "leadscore": (
                        f"http://127.0.0.1:{ls_settings.api_port}/v1/score",
                        api_key,
                        leadscore_proc,
                    ),
                    "seed": (f"http://127.0.0.1:{seed_port}/v1/score", None, seed_proc),
                    "seed+shap": (f"http://127.0.0.1:{seed_port}/v1/score/shap", None, seed_proc),
                }
                # --- check each answers as it should ---------------------------------------
                lead_id, body = next(iter(bodies.items()))
                for kind, payload in (("body", body), ("lead id", {"lead_id": lead_id})):
                    for server in servers:
                        url, key, _ = base[server]
                        status, answer, headers = post(url, orjson.dumps(payload), key)
                        if status != 200 or "server-timing" not in {h.lower() for h in headers}:
                            raise SystemExit(f"{server} ({kind}) answered {status}: {answer}")
                        if server == "leadscore":
                            if answer["model_version"] != version:
                                raise SystemExit(
                                    f"leadscore scored with {answer['model_version']}, not {version}"
                                )
                            print(
                                f"  leadscore ({kind}): score {answer['score']}, p {answer['probability']}, "
                                f"{len(answer['reasons'])} reasons, {len(answer.get('changes') or [])} changes, "
                                f"{len(orjson.dumps(answer))} bytes",
                                flush=True,
                            )
                        else:
                            print(
                                f"  {server} ({kind}): score {answer['score']}, p {answer['probability']}, "
                                f"{len(orjson.dumps(answer))} bytes",
                                flush=True,
                            )
                print(
                    f"servers: leadscore api pid {leadscore_proc.pid}, seed pid {seed_proc.pid}, "
                    f"{workers} uvicorn worker(s) each",
                    flush=True,
                )
                # --- first warm-up: every server and kind, once --------------------------------
                for kind in kinds:
                    for server in servers:
                        url, key, _ = base[server]
                        run_wrk(
                            url,
                            body_files[kind],
                            key,
                            20,
                            args.warmup,
                            args.threads,
                            script,
                            out_dir / "warm.json",
                        )
                        wait_idle(base[server][2].pid)

                # --- the measured runs ------------------------------------------------------------
                for rnd in range(args.rounds):
                    order = servers if rnd % 2 == 0 else list(reversed(servers))
                    for conc in args.concurrency:
                        for kind in kinds:
                            for server in order:
                                url, key, proc = base[server]
                                others = [
                                    p.pid for p in (leadscore_proc, seed_proc) if p is not proc
                                ]
                                run_wrk(
                                    url,
                                    body_files[kind],
                                    key,
                                    conc,
                                    args.warmup,
                                    args.threads,
                                    script,
                                    out_dir / "warm.json",
                                )
                                for p in (
                                    leadscore_proc,
                                    seed_proc,
                                ):  # neither may still be working
                                    wait_idle(p.pid)
                                row = measure(
                                    url,
                                    body_files[kind],
                                    key,
                                    conc,
                                    args.duration,
                                    args.threads,
                                    script,
                                    out_dir / "run.json",
                                    proc.pid,
                                    others,
                                )
                                row.update(
                                    workers=workers,
                                    kind=kind,
                                    concurrency=conc,
                                    server=server,
                                    round=rnd,
                                )
                                runs.append(row)
                                print(
                                    f"  w{workers} r{rnd} {kind:7s} c={conc:<4d} {server:10s} "
                                    f"{row['rps']:7.0f} req/s  client p50 {row['client_p50_ms']:7.2f} "
                                    f"p99 {row['client_p99_ms']:7.2f} ms  server p50 {row['server_p50_ms']:.2f} "
                                    f"p99 {row['server_p99_ms']:.2f} ms  cpu/req {row['cpu_ms_per_request']:.2f} ms  "
                                    f"cpu server {row['cpu_server']:.2f} "
                                    f"wrk {row['cpu_wrk']:.2f} idle {row['cpu_idle_servers']:.2f} "
                                    f"machine {row['cpu_machine']:.2f}"
                                    + (
                                        f"  NOT 200: {row['requests'] - row['ok']} {row['statuses']}"
                                        if row["ok"] != row["requests"]
                                        else ""
                                    ),
                                    flush=True,
                                )
            finally:
                stop_child(leadscore_proc, grace_s=10.0)
                stop_child(seed_proc, grace_s=10.0)

    summary = summarize(runs)
    table = markdown(summary)
    print("\n" + table)
    load_end = round(os.getloadavg()[0], 2)
    print(f"\nload average (1 min) at start {info['loadavg_1m_at_start']}, at end {load_end}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "loadavg_1m_at_end": load_end,
                    "command": "benchmarks/api_latency.py " + " ".join(sys.argv[1:]),
                    "model": version,
                    "seed_model": seed_info,
                    "bodies": {
                        "leads": len(bodies),
                        "activities_min_max_mean": [
                            min(n_acts),
                            max(n_acts),
                            float(np.mean(n_acts)),
                        ],
                        "body_bytes_mean": float(np.mean(body_bytes)),
                        "state_bytes_mean": float(np.mean(state_bytes)),
                    },
                    "runs": runs,
                    "summary": summary,
                    "markdown": table,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
