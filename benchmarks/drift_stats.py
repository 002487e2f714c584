"""CPU per window of the drift statistics: vectorized KS against a pre-sorted reference vs scipy.

Run: ``.venv/bin/python benchmarks/drift_stats.py`` (about a minute on 2 cores; ``--repeat``
sets the windows timed per cell).

Setup: 50 numeric features (normal and lognormal columns), a window of 1,000 rows, a
reference of 500, 2,000 and 5,000 rows. Every figure is the median CPU time
(``time.process_time``) per window over ``--repeat`` windows, all in the same run:

- ``ks+bign``: :func:`~leadscore.models.monitoring.stats.ks_2samp_sorted` (sort the
  window, one searchsorted per column, vectorized maxima), p-value by ``kstwobign``;
- ``ks+kstwo``: the same with scipy's exact 'asymp' p-value (``kstwo.sf``, the default);
- ``update``: :meth:`DriftDetector.update` at the default config (KS, BH, guards, report);
- ``scipy asymp`` / ``scipy auto``: ``scipy.stats.ks_2samp`` once per feature with
  ``method="asymp"`` and with its default (``"auto"``: exact for samples up to 10,000).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.models.monitoring.drift import DriftDetector, DriftReference
from leadscore.models.monitoring.stats import ks_2samp_sorted

N_FEATURES = 50
WINDOW = 1_000


def data(rng: np.random.Generator, n: int) -> np.ndarray:
    half = N_FEATURES // 2
    return np.hstack([rng.normal(size=(n, half)), rng.lognormal(size=(n, N_FEATURES - half))])


def cpu_ms(fn: Callable[[np.ndarray], object], windows: list[np.ndarray]) -> float:
    times = []
    for w in windows:
        t = time.process_time()
        fn(w)
        times.append(time.process_time() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    print(machine())
    rng = np.random.default_rng(0)
    windows = [data(rng, WINDOW) + 0.02 for _ in range(args.repeat)]
    print(
        f"{N_FEATURES} features, window {WINDOW:,}; median CPU ms per window over {args.repeat} windows"
    )
    print(
        f"{'n_ref':>6} {'ks+bign':>8} {'ks+kstwo':>9} {'update':>7} {'scipy asymp':>12} {'scipy auto':>11} {'auto/ks+kstwo':>14}"
    )
    for n_ref in (500, 2_000, 5_000):
        ref_x = data(rng, n_ref)
        names = [f"f{i}" for i in range(N_FEATURES)]
        ref = DriftReference.from_sample(ref_x, names)
        if ref.numeric_index.size != N_FEATURES:
            raise SystemExit("every benchmark column must be numeric")
        det = DriftDetector(ref)
        fast = cpu_ms(
            lambda w: ks_2samp_sorted(ref.sorted_numeric, w, ref.tie_start, "kstwobign"), windows
        )
        exact = cpu_ms(lambda w: ks_2samp_sorted(ref.sorted_numeric, w, ref.tie_start), windows)
        update = cpu_ms(det.update, windows)
        few = windows[: max(3, args.repeat // 5)]  # scipy is slow; fewer windows suffice
        asymp = cpu_ms(
            lambda w: [
                stats.ks_2samp(ref_x[:, j], w[:, j], method="asymp") for j in range(N_FEATURES)
            ],
            few,
        )
        auto = cpu_ms(
            lambda w: [stats.ks_2samp(ref_x[:, j], w[:, j]) for j in range(N_FEATURES)], few
        )
        print(
            f"{n_ref:>6,} {fast:>8.2f} {exact:>9.2f} {update:>7.2f} {asymp:>12.1f} {auto:>11.1f} {auto / exact:>13.0f}x"
        )


if __name__ == "__main__":
    main()
