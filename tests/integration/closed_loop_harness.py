"""Inputs for the closed-loop tests: simulated feature samples, and the drift monitor run offline.

Used by ``test_closed_loop_inputs.py`` and by the measurement in ``main()``:

    .venv/bin/python tests/integration/closed_loop_harness.py --seeds 0 1 2

prints, per seed, how many windows after the shift the first alert of a shifted run
comes, and how many windows of a calm run of the same length alert. It runs the same
``WindowBuffer`` + ``DriftMonitor`` the drift agent runs, on the same samples, with no
broker (the agent adds consumption and publishing, not statistics).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import orjson

from leadscore.infra.scorer import load_scorer
from leadscore.models.batch.replay import replay
from leadscore.models.features.vector import FEATURE_NAMES
from leadscore.models.monitoring.drift import DriftConfig
from leadscore.models.monitoring.monitor import DriftMonitor, WindowBuffer
from leadscore.models.scoring.scorer import Scorer
from leadscore.settings import Settings
from leadscore.simulation.config import Shift, SimConfig
from leadscore.simulation.simulator import Simulator

#: Simulated event times start here (all in the past, the same on every run).
SIM_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DriftRun:
    """What one drift scenario simulates (a shifted run and its calm twin differ only in ``shift_day``)."""

    n_leads: int = 8000
    span_days: float = 110.0
    max_life_days: float = 30.0
    #: The simulator starts from zero leads: samples before this are the population filling
    #: up (not stationary) and are dropped.
    warmup_days: float = 40.0
    shift_day: float | None = 70.0
    seed: int = 0

    @property
    def shift_at(self) -> datetime | None:
        return None if self.shift_day is None else SIM_START + timedelta(days=self.shift_day)

    def calm(self) -> DriftRun:
        return DriftRun(
            self.n_leads, self.span_days, self.max_life_days, self.warmup_days, None, self.seed
        )

    def sim_config(self) -> SimConfig:
        at = self.shift_at
        return SimConfig(
            n_leads=self.n_leads,
            span_days=self.span_days,
            seed=self.seed,
            start=SIM_START,
            max_life_days=self.max_life_days,
            shift=Shift(at=at) if at is not None else None,
        )


@dataclass(frozen=True)
class Sample:
    """A FeatureSample as published: key, JSON body, and what the windows need of it."""

    lead_id: str
    event_time: float  # epoch seconds
    body: bytes


def rules_scorer() -> Scorer:
    """What a worker with an empty registry scores with: the rules prior."""
    with TemporaryDirectory() as empty:
        return load_scorer(Settings(model_dir=Path(empty)))


def feature_samples(run: DriftRun, scorer: Scorer) -> list[Sample]:
    """The worker's ``leads.features.v1`` records for ``run`` (via :func:`replay`), warm-up dropped."""
    since = (SIM_START + timedelta(days=run.warmup_days)).timestamp()
    out: list[Sample] = []
    for result in replay(Simulator(run.sim_config()).events(), scorer, batch_size=512):
        for sample in result.samples:
            t = sample.event_time.timestamp()
            if t >= since:
                out.append(Sample(sample.lead_id, t, orjson.dumps(sample.model_dump(mode="json"))))
    return out


@dataclass(frozen=True)
class OfflineWindow:
    """A window as the agent would report it; ``closed_by`` is the index of the sample that filled it."""

    index: int
    level: str
    tested: bool
    start: float
    end: float
    closed_by: int
    n_rows: int = 0


def offline_windows(
    samples: list[Sample],
    window_size: int,
    baseline_windows: int,
    config: DriftConfig,
    min_span_s: float = 0.0,
) -> Iterator[OfflineWindow]:
    """The drift agent's windows for ``samples`` read in this order, computed in process."""
    buffer = WindowBuffer(window_size, min_span_s)
    monitor = DriftMonitor("offline", FEATURE_NAMES, config, baseline_windows)
    for i, sample in enumerate(samples):
        body = orjson.loads(sample.body)
        window = buffer.add(
            sample.lead_id,
            np.asarray(body["features"], dtype=np.float64),
            body["probability"],
            sample.event_time,
        )
        if window is not None:
            report = monitor.test(window)
            yield OfflineWindow(
                report.window_index,
                report.level,
                report.tested,
                window.start,
                window.end,
                i,
                window.X.shape[0],
            )


def windows_to_first_alert(
    windows: list[OfflineWindow], shift_at: datetime
) -> tuple[int | None, int | None]:
    """(windows after the shift until the first alert, same for the first medium-or-higher).

    Counted from the first window that ends after the shift (1 = that window alerts).
    """
    t = shift_at.timestamp()
    after = [w for w in windows if w.end > t]
    first = next((i + 1 for i, w in enumerate(after) if w.level != "none"), None)
    medium = next((i + 1 for i, w in enumerate(after) if w.level in ("medium", "high")), None)
    return first, medium


def _samples_of(run: DriftRun) -> list[Sample]:
    return feature_samples(run, rules_scorer())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--leads", type=int, default=DriftRun.n_leads)
    parser.add_argument("--span-days", type=float, default=DriftRun.span_days)
    parser.add_argument("--shift-day", type=float, default=DriftRun.shift_day)
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--baseline-windows", type=int, nargs="+", default=[3])
    parser.add_argument(
        "--min-days",
        type=float,
        nargs="+",
        default=[0.0],
        help="least event-time span of a window in days (LEADSCORE_DRIFT_WINDOW_MIN_DAYS); "
        "several values: one pass each",
    )
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    config = DriftConfig(min_window=min(200, args.window))
    print(f"leads={args.leads} span={args.span_days}d shift at day {args.shift_day} window={args.window} "
          f"min span {args.min_days} d (warm-up {DriftRun.warmup_days}d dropped)")  # fmt: skip
    runs = []
    for seed in args.seeds:
        shifted = DriftRun(
            n_leads=args.leads, span_days=args.span_days, shift_day=args.shift_day, seed=seed
        )
        runs += [shifted, shifted.calm()]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.processes) as pool:
        all_samples = list(pool.map(_samples_of, runs))
    print(f"simulated and replayed {len(runs)} runs in {time.perf_counter() - started:.0f} s")
    for min_days in args.min_days:
        for baseline in args.baseline_windows:
            for i, seed in enumerate(args.seeds):
                _report(args.window, min_days, baseline, seed, runs[2 * i], all_samples[2 * i],
                        all_samples[2 * i + 1], config)  # fmt: skip


def _report(
    window_size: int, min_days: float, baseline: int, seed: int, shifted: DriftRun,
    samples: list[Sample], calm_samples: list[Sample], config: DriftConfig,
) -> None:  # fmt: skip
    """Print one line: a shifted run's first alert after the shift and its calm twin's alerts."""
    assert shifted.shift_at is not None
    min_span_s = min_days * 86400
    t = shifted.shift_at.timestamp()
    windows = list(offline_windows(samples, window_size, baseline, config, min_span_s))
    first, medium = windows_to_first_alert(windows, shifted.shift_at)
    after = [w for w in windows if w.end > t]
    days = (after[first - 1].end - t) / 86400 if first else float("nan")
    medium_days = (after[medium - 1].end - t) / 86400 if medium else float("nan")
    before = sum(w.level != "none" for w in windows if w.end <= t)
    calm_windows = list(offline_windows(calm_samples, window_size, baseline, config, min_span_s))
    calm_levels = [w.level for w in calm_windows if w.tested]
    span_days = (windows[baseline - 1].end - windows[0].start) / 86400
    rows = np.mean([w.n_rows for w in calm_windows])
    window_days = np.mean([w.end - w.start for w in calm_windows]) / 86400
    print(
        f"min span {min_days:g} d, baseline {baseline} windows ({span_days:.1f} d), seed {seed}: "
        f"windows of {rows:.0f} leads, {window_days:.1f} d (calm, mean); shifted: "
        f"{sum(w.tested and w.end <= t for w in windows)} tested windows before the shift with "
        f"{before} alerts; first alert {first} windows ({days:.1f} d) after the shift, first "
        f"medium-or-higher {medium} ({medium_days:.1f} d); calm: "
        f"{sum(level != 'none' for level in calm_levels)} alert windows of {len(calm_levels)} "
        f"({''.join(level[0] for level in calm_levels)})",
        flush=True,
    )


if __name__ == "__main__":
    main()
