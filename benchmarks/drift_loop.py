"""Drift detection end to end on simulated traffic: delay, false alarms, CPU, records/s.

For each seed: a simulated run with a market shift at ``--shift-day`` and a calm run of
the same length, both through the worker's own batch logic (``leadscore.models.batch.replay``,
the rules prior scoring) to get the ``leads.features.v1`` records; the first
``--warmup-days`` are dropped (the simulator starts from zero leads). The records then go
through what the drift agent does per record (``FeatureSample`` validation, the
per-lead window) and per window (``DriftMonitor.test``), timed.

Baseline in the same run: the same windows tested with ``scipy.stats.ks_2samp`` per
numeric feature (what a straightforward agent would do).

    .venv/bin/python benchmarks/drift_loop.py --seeds 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from scipy import stats

from leadscore.infra.scorer import load_scorer
from leadscore.models.batch.replay import replay
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.monitoring.drift import DriftConfig
from leadscore.models.monitoring.monitor import DriftMonitor, WindowBuffer
from leadscore.models.monitoring.report import ALERT_LEVELS
from leadscore.schemas.learning import FeatureSample
from leadscore.settings import Settings
from leadscore.simulation.config import Shift, SimConfig
from leadscore.simulation.simulator import Simulator

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400.0


def records(seed: int, args: argparse.Namespace, shifted: bool, scorer) -> list[bytes]:
    shift = Shift(at=START + timedelta(days=args.shift_day)) if shifted else None
    config = SimConfig(
        n_leads=args.leads,
        span_days=args.span,
        seed=seed,
        start=START,
        max_life_days=args.life,
        shift=shift,
    )
    cutoff = START.timestamp() + args.warmup_days * DAY
    out = []
    for result in replay(Simulator(config).events(), scorer):
        for sample in result.samples:
            if sample.event_time.timestamp() >= cutoff:
                out.append(orjson.dumps(sample.model_dump(mode="json")))
    return out


def run_agent_path(raw: list[bytes], args: argparse.Namespace) -> dict:
    """What the agent does, timed: validate each record, window it, test each window."""
    monitor = DriftMonitor("bench", FEATURE_NAMES, DriftConfig(), args.baseline)
    buffer = WindowBuffer(args.window)
    decode_s = test_s = 0.0
    scipy_s = 0.0
    windows: list[tuple[float, str]] = []  # (window end, level) of tested windows
    for body in raw:
        t0 = time.thread_time()
        sample = FeatureSample.model_validate_json(body)
        closed = buffer.add(
            sample.lead_id,
            np.asarray(sample.features),
            sample.probability,
            sample.event_time.timestamp(),
        )
        decode_s += time.thread_time() - t0
        if closed is None:
            continue
        t0 = time.thread_time()
        report = monitor.test(closed)
        monitor.to_bytes()  # the agent saves the state after every window
        test_s += time.thread_time() - t0
        if report.tested:
            windows.append((closed.end, report.level))
            ref = monitor.detector_.reference
            t0 = time.thread_time()
            for j, col in enumerate(ref.numeric_index):
                stats.ks_2samp(ref.sorted_numeric[:, j], closed.X[:, col])
            scipy_s += time.thread_time() - t0
    return {
        "records": len(raw),
        "decode_s": decode_s,
        "test_s": test_s,
        "scipy_s": scipy_s,
        "windows": windows,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--span", type=float, default=150.0)
    parser.add_argument("--life", type=float, default=30.0)
    parser.add_argument("--shift-day", type=float, default=90.0)
    parser.add_argument("--warmup-days", type=float, default=40.0)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {vars(args)}"
    )
    scorer = load_scorer(Settings(model_dir=tempfile.mkdtemp()))  # empty registry: the rules prior
    shift_t = START.timestamp() + args.shift_day * DAY
    totals = {"records": 0, "decode_s": 0.0, "test_s": 0.0, "scipy_s": 0.0, "windows": 0}
    false_alarms = calm_windows = 0
    print(
        "seed  calm windows  calm alerts  shifted windows after T  first low/medium/high after T (windows; days)"
    )
    for seed in args.seeds:
        calm = run_agent_path(records(seed, args, False, scorer), args)
        shifted = run_agent_path(records(seed, args, True, scorer), args)
        alerts = [level for _, level in calm["windows"] if level != "none"]
        false_alarms += len(alerts)
        calm_windows += len(calm["windows"])
        after = [(end, level) for end, level in shifted["windows"] if end >= shift_t]
        pre_alerts = sum(level != "none" for end, level in shifted["windows"] if end < shift_t)
        firsts = []
        for threshold in ("low", "medium", "high"):
            k = next(
                (
                    i
                    for i, (_, level) in enumerate(after)
                    if ALERT_LEVELS.index(level) >= ALERT_LEVELS.index(threshold)
                ),
                None,
            )
            firsts.append("-" if k is None else f"{k + 1}; {(after[k][0] - shift_t) / DAY:.1f} d")
        print(
            f"{seed:>4}  {len(calm['windows']):>12}  {len(alerts):>11}  {len(after):>23}  "
            + " / ".join(firsts)
            + (f"  (alerts before T: {pre_alerts})" if pre_alerts else "")
        )
        for run in (calm, shifted):
            for key in ("records", "decode_s", "test_s", "scipy_s"):
                totals[key] += run[key]
            totals["windows"] += len(run["windows"])
    n, w = totals["records"], max(totals["windows"], 1)
    print(f"\nfalse-alarm rate (calm runs): {false_alarms} of {calm_windows} tested windows")
    print(f"records: {n:,}; windows: {w} of {args.window} leads")
    print(f"per record (validate + window): {totals['decode_s'] / n * 1e6:.1f} us CPU")
    print(f"per window, leadscore (tests + state save): {totals['test_s'] / w * 1e3:.1f} ms CPU")
    print(
        f"per window, scipy ks_2samp per numeric feature (baseline): {totals['scipy_s'] / w * 1e3:.1f} ms CPU"
    )
    per_record = (totals["decode_s"] + totals["test_s"]) / n
    print(f"records/s one agent keeps up with (CPU bound): {1 / per_record:,.0f}")


if __name__ == "__main__":
    main()
