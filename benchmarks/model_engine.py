"""The model engine's numbers, each beside the naive scikit-learn baseline measured in the same run.

Run: ``.venv/bin/python benchmarks/model_engine.py`` (100,000 training rows; one run of
``train()``'s full comparison, which dominates the time: well over 15 minutes on 2 cores;
``--train-folds 0`` skips it, ~10 minutes) or ``--quick`` (20,000 rows, no ``train()``, fewer
calls: about 2 minutes). ``--json PATH`` also writes the results. Results are in
``docs/performance.md`` ("Model engine").

What is measured, on a synthetic lead table (``make_classification``: 36 numeric columns,
three categorical columns one-hot encoded into 13 binary features, one yes/no column; 50
features; ~12 % positives):

1. training: ``train()`` with ``TrainConfig(folds=5, search="quick")`` (every variant and
   baseline on the same folds, then the final fit), its final fit alone (from the report),
   and a plain ``LeadScoringEnsemble().fit``; beside one fit of the seed's design, a soft
   ``VotingClassifier`` (RF 100 trees depth 8 + GB 150 trees depth 3 + LR, 0.4/0.4/0.2).
   Each is timed once.
2. one lead: score + top-5 reasons in words (``Scorer`` on the ``CompiledModel``), from a
   dict record (``FeaturePipeline.transform_one``) and from a ready vector; p50/p99 per call
   beside scikit-learn ``predict_proba`` on one row and ``shap.TreeExplainer`` on the same
   model's forest and boosting members. Methods are interleaved in rounds, so a burst of
   load on the shared machine hits them all.
3. batches: rows/s for score only and score + reasons, on 1 and 2 threads, beside
   scikit-learn ``predict_proba`` on the same rows (best of a few runs, interleaved).
4. size on disk: ``CompiledModel.to_files`` beside ``pickle.dumps`` of the estimators.
5. memory: RSS growth in a fresh subprocess when loading one model and scoring + explaining
   a row, then a second copy (the true per-model cost), beside the pickled estimator.

Every figure sits beside its baseline from the same run: the machine is shared and timings
are noisy, so the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine

from leadscore.models.engine import evaluate as engine
from leadscore.models.engine.compiled import CompiledModel, to_points
from leadscore.models.engine.links import sigmoid
from leadscore.models.scoring.scorer import Scorer, ScoringPolicy
from leadscore.models.tabular.pipeline import FeaturePipeline
from leadscore.models.training.candidates import TrainConfig
from leadscore.models.training.ensemble import LeadScoringEnsemble
from leadscore.models.training.folds import TrainingData
from leadscore.models.training.train import train

ROOT = Path(__file__).resolve().parent.parent

# --- the data ------------------------------------------------------------------------------


def make_leads(n_rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A CRM-like table of ``n_rows`` leads (40 columns, 50 features once encoded) and 0/1 labels."""
    X, y = make_classification(
        n_samples=n_rows,
        n_features=40,
        n_informative=12,
        n_redundant=8,
        weights=[0.88],
        flip_y=0.02,
        class_sep=0.8,
        random_state=seed,
    )
    cols: dict[str, Any] = {}
    for i in range(36):
        if i < 8:  # counts (page views, emails opened...): heavy-tailed whole numbers
            cols[f"count_{i}"] = np.floor(np.exp(1.0 + 0.8 * X[:, i])).astype(np.int64)
        else:
            cols[f"num_{i}"] = np.round(X[:, i], 3)
    # three categorical columns (one-hot: 6 + 4 + 3 binary features) and one yes/no column
    for name, j, levels in (
        ("industry", 36, ["software", "retail", "finance", "health", "education", "manufacturing"]),
        ("source", 37, ["web", "email", "referral", "event"]),
        ("region", 38, ["emea", "americas", "apac"]),
    ):
        edges = np.quantile(X[:, j], np.linspace(0, 1, len(levels) + 1)[1:-1])
        cols[name] = np.array(levels, dtype=object)[np.searchsorted(edges, X[:, j])]
    cols["requested_demo"] = np.where(X[:, 39] > 0.3, "yes", "no")
    return pd.DataFrame(cols), y.astype(np.int64)


# --- timing helpers ------------------------------------------------------------------------


def per_call_ms(
    fns: dict[str, Callable[[int], Any]], n_calls: dict[str, int], rounds: int = 4
) -> dict[str, tuple[float, float]]:
    """(p50, p99) in ms per call of each ``fn(i)``; the methods take turns in ``rounds`` rounds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        for i in range(20):  # warm-up
            fn(i)
    for r in range(rounds):
        for name, fn in fns.items():
            per_round = max(1, n_calls[name] // rounds)
            start = r * per_round
            for i in range(start, start + per_round):
                t0 = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t0)
    return {
        k: (float(np.percentile(v, 50) * 1e3), float(np.percentile(v, 99) * 1e3))
        for k, v in times.items()
    }


def best_seconds(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best wall time of each ``fn()`` over ``repeat`` interleaved runs."""
    best = {k: np.inf for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class ThreadedModel:
    """A :class:`CompiledModel` scored and explained on ``n_threads`` threads (for ``Scorer``).

    ``CompiledModel`` always calls the engine on one thread; ``engine.predict`` and
    ``engine.shap_values`` take ``n_threads``. This is the same arithmetic with the threads passed.
    """

    def __init__(self, model: CompiledModel, n_threads: int) -> None:
        self.model = model
        self.n_threads = n_threads
        self.feature_names = model.feature_names

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        m = self.model
        z = np.full(X.shape[0], m.offset)
        if m.trees is not None:
            z += engine.predict(m.trees, X, n_threads=self.n_threads)
        if m.linear is not None:
            z += m.linear.value(X)
        p1 = sigmoid(z)
        return np.column_stack([1.0 - p1, p1])

    def score_and_explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.model
        z0, phi = m.offset, np.zeros(X.shape)
        if m.trees is not None:
            tree_base, tree_phi = engine.shap_values(m.trees, X, n_threads=self.n_threads)
            z0 += tree_base
            phi += tree_phi
        if m.linear is not None:
            phi += m.linear.shap(X)
        z = z0 + phi.sum(axis=1)
        base_points, points = to_points(z0, z, phi)
        return sigmoid(z), base_points, points


def score_and_reasons(scorer: Scorer, X: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """What a caller does: probabilities, then the explanations (top reasons in words)."""
    return scorer.probabilities(X), scorer.explain(X)


def shap_members(estimator: LeadScoringEnsemble) -> Callable[[np.ndarray], Any]:
    """``shap.TreeExplainer`` (path-dependent) on the estimator's forest and boosting members."""
    rf, gb, _ = estimator.estimators_
    cols = estimator.columns_
    explainers = [
        shap.TreeExplainer(m, feature_perturbation="tree_path_dependent")
        for m in (rf, gb)
        if m is not None
    ]

    def explain(X: np.ndarray) -> list[Any]:
        Xc = X[:, cols]
        return [e.shap_values(Xc, check_additivity=False) for e in explainers]

    return explain


# --- memory in a fresh process ---------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, pickle, sys
from pathlib import Path
import numpy as np

def rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

mode, path, row_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
x = np.load(row_path)
if mode == "compiled":
    from leadscore.models.engine.compiled import CompiledModel
    def load_and_use():
        m = CompiledModel.from_files(path)
        m.predict_proba(x)
        m.score_and_explain(x)
        return m
else:
    import sklearn.ensemble, sklearn.linear_model, sklearn.pipeline  # noqa: F401
    import leadscore.models.training.ensemble  # noqa: F401  (the pickle's classes)
    if mode == "sklearn+shap":
        import shap
    def load_and_use():
        m = pickle.loads(path.read_bytes())
        m.predict_proba(x)
        if mode == "sklearn+shap":
            cols = getattr(m, "columns_", None)
            members = m.estimators_[:2] if cols is not None else m.estimators_[:2]
            xc = x[:, cols] if cols is not None else x
            ex = [shap.TreeExplainer(e, feature_perturbation="tree_path_dependent") for e in members]
            for e in ex:
                e.shap_values(xc, check_additivity=False)
            return m, ex
        return m
before = rss_kib()
first = load_and_use()
after_first = rss_kib()
second = load_and_use()
after_second = rss_kib()
print(json.dumps({"imports_kib": before, "first_kib": after_first - before, "second_kib": after_second - after_first}))
"""


def memory_growth(mode: str, path: Path, row_path: Path) -> dict[str, int]:
    """RSS (KiB) after imports, and growth for the first and a second loaded copy of a model."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, mode, str(path), str(row_path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- reporting ---------------------------------------------------------------------------------


def ratio_words(ours: float, base: float, kind: str) -> str:
    """``ours`` against ``base`` in words: time and bytes (lower is better) or rates (higher)."""
    if not (ours > 0 and base > 0):
        return "n/a"
    better = base / ours if kind in ("time", "size") else ours / base
    good, bad = {
        "time": ("faster", "slower"),
        "size": ("smaller", "larger"),
        "rate": ("faster", "slower"),
    }[kind]
    return f"{better:.1f}x {good}" if better >= 1 else f"{1 / better:.1f}x {bad}"


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:,.1f} s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    if unit == "bytes":
        return f"{value / 2**20:.2f} MiB" if value >= 2**20 else f"{value / 2**10:.0f} KiB"
    if unit == "KiB":
        return f"{value / 1024:.1f} MiB"
    return f"{value:g} {unit}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| measure | leadscore | baseline (same run) | baseline | ratio |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ours = fmt(r["value"], r["unit"]) if r.get("value") is not None else "–"
        if "p99" in r:
            ours = f"p50 {fmt(r['value'], 'ms')} / p99 {fmt(r['p99'], 'ms')}"
        base = "–"
        if r.get("baseline_value") is not None:
            base = fmt(r["baseline_value"], r["unit"])
            if "baseline_p99" in r:
                base = f"p50 {fmt(r['baseline_value'], 'ms')} / p99 {fmt(r['baseline_p99'], 'ms')}"
        ratio = r.get("ratio", "")
        lines.append(f"| {r['measure']} | {ours} | {r.get('baseline', '')} | {base} | {ratio} |")
    return "\n".join(lines)


# --- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 rows, 500 calls, batches of 10k/20k, no train() unless --train-folds (~2-3 minutes)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="training rows (default 100,000; 20,000 with --quick)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=None,
        help="single-lead calls per figure (default 2,000; 500 with --quick)",
    )
    parser.add_argument(
        "--train-folds",
        type=int,
        default=None,
        help="outer folds of train()'s comparison (default 5; 0 skips train() and scores "
        "LeadScoringEnsemble().fit instead; --quick defaults to 0)",
    )
    parser.add_argument(
        "--search", choices=("none", "quick"), default="quick", help="train()'s search"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    n_rows = args.rows or (20_000 if args.quick else 100_000)
    calls = args.calls or (500 if args.quick else 2000)
    batch_sizes = (10_000, 20_000) if args.quick else (10_000, 100_000)

    info = machine()
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, python {info['python']}, "
        f"load {info['loadavg_1m_at_start']} at start",
        flush=True,
    )
    rows: list[dict[str, Any]] = []

    def add(
        section: str,
        measure: str,
        value: float,
        unit: str,
        baseline: str = "",
        baseline_value: float | None = None,
        kind: str = "time",
        **extra: Any,
    ) -> None:
        row = {
            "section": section,
            "measure": measure,
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_value": baseline_value,
            **extra,
        }
        if baseline_value is not None:
            row["ratio"] = ratio_words(value, baseline_value, kind)
        rows.append(row)
        print(
            f"  {measure}: {fmt(value, unit)}"
            + (
                f"  | {baseline}: {fmt(baseline_value, unit)} ({row['ratio']})"
                if baseline_value is not None
                else ""
            ),
            flush=True,
        )

    # --- data ----------------------------------------------------------------------------
    df, y = make_leads(n_rows, seed=0)
    pipeline, pipe_s = timed(lambda: FeaturePipeline.fit(df, y=y))
    X = pipeline.transform(df)
    names = pipeline.feature_names
    print(
        f"data: {n_rows:,} rows x {X.shape[1]} features ({len(df.columns)} input columns), "
        f"{y.mean():.1%} positive; pipeline fitted in {pipe_s:.1f} s",
        flush=True,
    )

    # --- 1. training ---------------------------------------------------------------------
    print("\n1. training (each timed once)", flush=True)
    engine.warmup()
    voting = VotingClassifier(
        [
            ("rf", RandomForestClassifier(100, max_depth=8, n_jobs=1, random_state=0)),
            ("gb", GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=0)),
            ("lr", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ],
        voting="soft",
        weights=[0.4, 0.4, 0.2],
    )
    _, voting_s = timed(lambda: voting.fit(X, y))
    plain, plain_s = timed(lambda: LeadScoringEnsemble(random_state=0).fit(X, y))
    voting_name = "VotingClassifier(RF 100/d8 + GB 150/d3 + LR).fit"
    add(
        "training",
        f"LeadScoringEnsemble().fit, {n_rows:,} rows (default parameters, no search)",
        plain_s,
        "s",
        voting_name,
        voting_s,
    )
    folds = args.train_folds if args.train_folds is not None else (0 if args.quick else 5)
    auc: dict[str, float] = {}
    if folds:
        # variant="ensemble" deploys the 40/40/20 ensemble whatever the comparison finds, so
        # the scoring figures below are for the full three-member model.
        config = TrainConfig(folds=folds, search=args.search, variant="ensemble")
        result, train_s = timed(lambda: train(TrainingData(X=X, y=y, feature_names=names), config))
        final_s = float(result.report["final"]["fit_seconds"])
        add(
            "training",
            f"train(): {folds} folds, search={args.search!r}, every variant and baseline, "
            "then the final fit",
            train_s,
            "s",
            voting_name,
            voting_s,
        )
        add(
            "training",
            "train(): its final fit alone (feature selection, search, refit, calibration)",
            final_s,
            "s",
            voting_name,
            voting_s,
        )
        model, estimator, variant = result.model, result.estimator, f"train() {result.variant}"
        auc = {
            m["name"]: m["cv"]["roc_auc"]
            for m in result.report["models"]
            if m["cv"].get("roc_auc") is not None
        }
    else:
        model, estimator, variant = (
            plain.compile(names),
            plain,
            "LeadScoringEnsemble().fit, uncalibrated",
        )
    n_trees = model.trees.n_trees if model.trees is not None else 0
    print(f"  scored below: {variant}, {n_trees} trees", flush=True)

    # --- 2. one lead --------------------------------------------------------------------------
    print(f"\n2. one lead per call ({calls:,} calls; shap baseline fewer)", flush=True)
    policy = ScoringPolicy(change_threshold=0, top_reasons=5)
    scorer = Scorer(model, "bench", policy, describe=pipeline.describe, families=None)
    rng = np.random.default_rng(1)
    pick = rng.integers(0, n_rows, max(calls, 2000) + 100)
    records = df.iloc[pick].to_dict("records")
    vectors = X[pick]
    sk_explain = shap_members(estimator)
    n_shap = max(200, calls // 5)

    def from_record(i: int) -> Any:
        x = pipeline.transform_one(records[i])[None, :]
        return score_and_reasons(scorer, x)

    one = per_call_ms(
        {
            "record": from_record,
            "vector": lambda i: score_and_reasons(scorer, vectors[i : i + 1]),
            "score_only": lambda i: scorer.probabilities(vectors[i : i + 1]),
            "voting": lambda i: voting.predict_proba(vectors[i : i + 1]),
            "ensemble": lambda i: estimator.predict_proba(vectors[i : i + 1]),
            "shap": lambda i: sk_explain(vectors[i : i + 1]),
        },
        {
            "record": calls,
            "vector": calls,
            "score_only": calls,
            "voting": calls,
            "ensemble": calls,
            "shap": n_shap,
        },
    )
    base_name = "sklearn VotingClassifier.predict_proba, 1 row"
    for key, label in (
        ("record", "score + top-5 reasons in words, from a dict record (transform_one)"),
        ("vector", "score + top-5 reasons in words, from a ready vector"),
        ("score_only", "score only (Scorer.probabilities), from a ready vector"),
    ):
        p50, p99 = one[key]
        add(
            "one lead",
            label,
            p50,
            "ms",
            base_name,
            one["voting"][0],
            p99=p99,
            baseline_p99=one["voting"][1],
        )
    add(
        "one lead",
        "score + reasons, from a dict record",
        one["record"][0],
        "ms",
        "LeadScoringEnsemble.predict_proba (sklearn), 1 row",
        one["ensemble"][0],
        p99=one["record"][1],
        baseline_p99=one["ensemble"][1],
    )
    add(
        "one lead",
        "score + reasons, from a dict record",
        one["record"][0],
        "ms",
        f"shap.TreeExplainer on the RF + GB members, 1 row ({n_shap} calls; explanation only)",
        one["shap"][0],
        p99=one["record"][1],
        baseline_p99=one["shap"][1],
    )

    # --- 3. batches --------------------------------------------------------------------------
    print("\n3. batches (rows/s, best of interleaved runs)", flush=True)
    scorer2 = Scorer(
        ThreadedModel(model, 2), "bench", policy, describe=pipeline.describe, families=None
    )
    check_rows = X[:1000]
    p1, e1 = score_and_reasons(scorer, check_rows)
    p2, e2 = score_and_reasons(scorer2, check_rows)
    if not (
        np.allclose(p1, p2, atol=1e-12) and all(a.reasons == b.reasons for a, b in zip(e1, e2))
    ):
        raise RuntimeError("the 2-thread path disagrees with CompiledModel; the benchmark is wrong")
    for size in batch_sizes:
        B = X[rng.integers(0, n_rows, size)] if size > n_rows else X[rng.permutation(n_rows)[:size]]
        repeat = 3 if size <= 20_000 else 2
        best = best_seconds(
            {
                "voting": lambda: voting.predict_proba(B),
                "ensemble": lambda: estimator.predict_proba(B),
                "score1": lambda: scorer.probabilities(B),
                "score2": lambda: scorer2.probabilities(B),
                "reasons1": lambda: score_and_reasons(scorer, B),
                "reasons2": lambda: score_and_reasons(scorer2, B),
                "points1": lambda: model.score_and_explain(B),
            },
            repeat,
        )
        rate = {k: size / v for k, v in best.items()}
        base_name = f"sklearn VotingClassifier.predict_proba, same {size:,} rows"
        for key, label in (
            ("score1", "score only, 1 thread"),
            ("score2", "score only, 2 threads"),
            ("reasons1", "score + top-5 reasons in words, 1 thread"),
            ("reasons2", "score + top-5 reasons in words, 2 threads"),
            ("points1", "score + SHAP points, no words (score_and_explain), 1 thread"),
        ):
            add(
                "batch",
                f"{size:,} rows: {label}",
                rate[key],
                "rows/s",
                base_name,
                rate["voting"],
                kind="rate",
            )
        add(
            "batch",
            f"{size:,} rows: score + reasons, 1 thread",
            rate["reasons1"],
            "rows/s",
            "LeadScoringEnsemble.predict_proba (sklearn), score only",
            rate["ensemble"],
            kind="rate",
        )
    n_sub = 1000 if not args.quick else 300
    sub = X[:n_sub]
    best = best_seconds(
        {"shap": lambda: sk_explain(sub), "reasons1": lambda: score_and_reasons(scorer, sub)}, 1
    )
    add(
        "batch",
        f"{n_sub:,} rows: score + reasons, 1 thread",
        n_sub / best["reasons1"],
        "rows/s",
        "shap.TreeExplainer on the RF + GB members (explanation only)",
        n_sub / best["shap"],
        kind="rate",
    )

    # --- 4. size on disk, 5. memory ---------------------------------------------------------
    print("\n4-5. size and memory", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        compiled_dir = tmp_path / "compiled"
        compiled_dir.mkdir()
        files = model.to_files(compiled_dir)
        compiled_bytes = sum(f.stat().st_size for f in files)
        ens_bytes = pickle.dumps(estimator)
        voting_bytes = pickle.dumps(voting)
        (tmp_path / "ensemble.pkl").write_bytes(ens_bytes)
        add(
            "size",
            "CompiledModel.to_files (model.npz + model.json)",
            compiled_bytes,
            "bytes",
            "pickle.dumps(LeadScoringEnsemble), same model",
            len(ens_bytes),
            kind="size",
        )
        add(
            "size",
            "CompiledModel.to_files (model.npz + model.json)",
            compiled_bytes,
            "bytes",
            "pickle.dumps(VotingClassifier)",
            len(voting_bytes),
            kind="size",
        )
        row_path = tmp_path / "row.npy"
        np.save(row_path, X[:1])
        mem = {
            "compiled": memory_growth("compiled", compiled_dir, row_path),
            "ensemble": memory_growth("sklearn", tmp_path / "ensemble.pkl", row_path),
            "ensemble+shap": memory_growth("sklearn+shap", tmp_path / "ensemble.pkl", row_path),
        }
    for which, label in (
        ("first_kib", "first model in a process (incl. numba kernels)"),
        ("second_kib", "each further model"),
    ):
        ours = mem["compiled"][which]
        add(
            "memory",
            f"RSS growth, {label}: CompiledModel.from_files + score + explain 1 row",
            ours,
            "KiB",
            "pickled LeadScoringEnsemble + predict_proba",
            mem["ensemble"][which],
            kind="size",
        )
        add(
            "memory",
            f"RSS growth, {label}: CompiledModel.from_files + score + explain 1 row",
            ours,
            "KiB",
            "pickled LeadScoringEnsemble + predict_proba + shap.TreeExplainer(RF, GB)",
            mem["ensemble+shap"][which],
            kind="size",
        )

    plan = model.trees.shap_plan if model.trees is not None else None
    summary = {
        "machine": info,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "command": "benchmarks/model_engine.py " + " ".join(sys.argv[1:]),
        "data": {"rows": n_rows, "features": int(X.shape[1]), "positive_rate": float(y.mean())},
        "model": {
            "variant": variant,
            "trees": n_trees,
            "shap_leaves": plan.n_leaves if plan else 0,
            "shap_table_leaves": plan.n_table_leaves if plan else 0,
            "shap_table_bytes": plan.table_bytes if plan else 0,
            "train_folds": folds,
            "search": args.search if folds else None,
            "cv_roc_auc": auc,
        },
        "memory_imports_kib": {k: v["imports_kib"] for k, v in mem.items()},
        "rows": rows,
    }
    print(
        f"\nmodel: {variant}, {n_trees} trees, {summary['model']['shap_leaves']:,} leaves "
        f"({summary['model']['shap_table_leaves']:,} with SHAP tables, "
        f"{summary['model']['shap_table_bytes'] / 2**20:.1f} MiB); cv ROC-AUC "
        + ", ".join(f"{k} {v:.3f}" for k, v in auc.items())
    )
    print(
        "RSS after imports (before any model): "
        + ", ".join(f"{k} {v['imports_kib'] / 1024:.0f} MiB" for k, v in mem.items())
    )
    print(
        f"load average (1 min) at start {info['loadavg_1m_at_start']}, at end {summary['loadavg_1m_at_end']}\n"
    )
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=float))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
