"""Speed of the compiled engine beside scikit-learn and shap, on the same rows in the same run.

Run: ``.venv/bin/python benchmarks/engine_speed.py`` (about 3 minutes on 2 cores, most of it
training and shap's own explainer). ``--quick`` trains smaller forests for a smoke run.

Models: a synthetic 20,000 x 50 binary problem (``make_classification``); RandomForest of
100 trees, ``max_depth`` 8, ``min_samples_leaf`` 20, ``max_features="sqrt"``;
GradientBoosting of 150 trees of depth 3; the blend is ``0.5 * rf + 0.5 * gb`` in one
:class:`~leadscore.models.engine.trees.TreeEnsemble`. Extra forests of depth 6 and 10 show the
table-versus-direct trade-off of the SHAP kernel. Every figure has its baseline beside it:
timings on a shared 2-core machine are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shap
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.models.engine.evaluate import predict, prepare_shap, shap_values, warmup
from leadscore.models.engine.from_sklearn import compile_forest, compile_gradient_boosting
from leadscore.models.engine.trees import concat


def per_call_ms(fn: Callable[[int], Any], n_calls: int) -> tuple[float, float]:
    """(p50, p99) in ms of ``fn(i)`` over ``n_calls`` calls, after 20 warm-up calls."""
    for i in range(20):
        fn(i)
    times = np.empty(n_calls)
    for i in range(n_calls):
        t0 = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - t0
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def rows_per_s(fn: Callable[[], Any], n_rows: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``fn()`` (which handles ``n_rows`` rows), in rows/s."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_rows / best


def shap_explainers(models: list[tuple[Any, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """shap's TreeExplainer on each member, blended like the compiled ensemble."""
    exps = [
        (shap.TreeExplainer(m, feature_perturbation="tree_path_dependent"), w) for m, w in models
    ]

    def explain(X: np.ndarray) -> np.ndarray:
        total = 0.0
        for exp, w in exps:
            values = exp.shap_values(X, check_additivity=False)
            if isinstance(values, list):
                values = values[1]
            if values.ndim == 3:
                values = values[..., 1]
            total = total + w * values
        return total

    return explain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trees and calls (smoke run)")
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per figure")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per batch")
    args = parser.parse_args()
    n_trees_rf, n_trees_gb = (20, 30) if args.quick else (100, 150)
    calls = 200 if args.quick else args.calls

    info = machine()
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, python {info['python']}, "
        f"load {info['loadavg_1m_at_start']}"
    )
    X, y = make_classification(
        n_samples=20_000,
        n_features=50,
        n_informative=15,
        n_redundant=10,
        flip_y=0.05,
        random_state=0,
    )
    rng = np.random.default_rng(0)
    batch = X[rng.integers(0, len(X), args.batch)]
    prior = float(y.mean())

    t0 = time.perf_counter()
    rfs = {
        d: RandomForestClassifier(
            n_trees_rf,
            max_depth=d,
            min_samples_leaf=20,
            max_features="sqrt",
            random_state=0,
            n_jobs=2,
        ).fit(X, y)
        for d in (6, 8, 10)
    }
    for rf in rfs.values():
        rf.n_jobs = 1  # score like a request handler: one thread
    gb = GradientBoostingClassifier(n_estimators=n_trees_gb, max_depth=3, random_state=0).fit(X, y)
    print(f"trained in {time.perf_counter() - t0:.0f} s")

    t0 = time.perf_counter()
    warmup()
    print(f"warmup: {time.perf_counter() - t0:.2f} s (numba cache load or compile)")
    rf8 = compile_forest(rfs[8], prior=prior)
    gbc = compile_gradient_boosting(gb)
    t0 = time.perf_counter()
    blend = concat([(rf8, 0.5), (gbc, 0.5)])
    plan = prepare_shap(blend)
    print(
        f"blend compiled + SHAP plan in {time.perf_counter() - t0:.2f} s: {plan.n_leaves} leaves, "
        f"{plan.n_table_leaves} with tables ({plan.table_bytes / 2**20:.1f} MiB), "
        f"max {plan.max_path_features} features on a path"
    )

    # --- one row per call ----------------------------------------------------------------
    def sk_row(i: int) -> float:
        x = batch[i % len(batch)][None, :]
        return 0.5 * rfs[8].predict_proba(x)[0, 1] + 0.5 * gb.decision_function(x)[0]

    sk_explain = shap_explainers([(rfs[8], 0.5), (gb, 0.5)])
    rows = [
        (
            "1 row: sklearn predict_proba(rf)+decision_function(gb)",
            per_call_ms(sk_row, calls),
            "ms",
        ),
        (
            "1 row: predict",
            per_call_ms(lambda i: predict(blend, batch[i : i + 1]), calls),
            "ms",
        ),
        (
            "1 row: shap.TreeExplainer rf+gb",
            per_call_ms(lambda i: sk_explain(batch[i : i + 1]), max(50, calls // 10)),
            "ms",
        ),
        (
            "1 row: predict + shap_values",
            per_call_ms(
                lambda i: (
                    predict(blend, batch[i : i + 1]),
                    shap_values(blend, batch[i : i + 1]),
                ),
                calls,
            ),
            "ms",
        ),
    ]
    print(f"\n{'single row (p50 / p99)':58s} {'p50':>9s} {'p99':>9s}")
    for name, (p50, p99), unit in rows:
        print(f"{name:58s} {p50:7.3f}{unit} {p99:7.3f}{unit}")

    # --- batches ---------------------------------------------------------------------------
    n = len(batch)
    n_shap = min(n, 1000)  # shap's own explainer is slow: fewer rows, same units
    print(
        f"\n{'batch of ' + str(n) + ' rows (rows/s, best of 3)':58s} {'rows/s':>10s} {'vs base':>8s}"
    )
    base = rows_per_s(
        lambda: 0.5 * rfs[8].predict_proba(batch)[:, 1] + 0.5 * gb.decision_function(batch), n
    )
    print(f"{'sklearn predict_proba(rf) + decision_function(gb)':58s} {base:10,.0f} {1.0:7.1f}x")
    for t in (1, 2):
        r = rows_per_s(lambda: predict(blend, batch, n_threads=t), n)
        print(f"{f'predict, {t} thread(s)':58s} {r:10,.0f} {r / base:7.1f}x")
    shap_base = rows_per_s(lambda: sk_explain(batch[:n_shap]), n_shap, repeat=1)
    print(f"{f'shap.TreeExplainer rf+gb ({n_shap} rows)':58s} {shap_base:10,.0f} {1.0:7.1f}x")
    for t in (1, 2):
        r = rows_per_s(lambda: shap_values(blend, batch, n_threads=t), n)
        print(f"{f'shap_values rf+gb, {t} thread(s)':58s} {r:10,.0f} {r / shap_base:7.1f}x")

    # --- table versus direct, by forest depth ----------------------------------------------------
    print(
        f"\n{'forest depth: SHAP rows/s, 1 thread':36s} {'leaves':>7s} {'tables':>14s} "
        f"{'shap':>8s} {'direct':>8s} {'default':>8s} {'all tab.':>9s}"
    )
    for d, rf in rfs.items():
        ens = compile_forest(rf, prior=prior)
        plan = prepare_shap(ens)
        sub = batch[:2000]
        exp = shap.TreeExplainer(rf, feature_perturbation="tree_path_dependent")
        r_shap = rows_per_s(
            lambda: exp.shap_values(batch[:300], check_additivity=False), 300, repeat=1
        )
        direct = concat([(ens, 1.0)], shap_table_budget_bytes=0)
        r_direct = rows_per_s(lambda: shap_values(direct, sub), len(sub))
        r_default = rows_per_s(lambda: shap_values(ens, sub), len(sub))
        all_tables = "n/a"
        full = concat([(ens, 1.0)], shap_table_budget_bytes=2**30)
        full_plan = prepare_shap(full)
        if full_plan.n_table_leaves == full_plan.n_leaves:
            all_tables = f"{rows_per_s(lambda: shap_values(full, sub), len(sub)):9,.0f}"
        tables = f"{plan.n_table_leaves}/{plan.n_leaves} {plan.table_bytes / 2**20:.0f}MiB"
        print(
            f"{f'rf depth {d} (full tables {full_plan.table_bytes / 2**20:.0f} MiB)':36s} "
            f"{plan.n_leaves:7d} {tables:>14s} {r_shap:8,.0f} {r_direct:8,.0f} {r_default:8,.0f} {all_tables:>9s}"
        )


if __name__ == "__main__":
    main()
