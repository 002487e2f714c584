"""Train and compare models honestly: the same folds for every candidate, nothing tuned on a test fold.

One run of :func:`train` does, for each outer fold and then once more on all rows:

1. split the fold's training rows into an inner training part and a held-out part (the
   latest 20 % when rows have times, else a stratified — and lead-grouped — 20 %);
2. **feature selection** on the inner part: a quick LightGBM ranks features by split gain;
   features below 0.1 % of the total gain are dropped (at least 5 are kept);
3. **hyperparameter search** per member (RandomForest, gradient boosting, logistic
   regression): a few candidates fitted on the inner part, the best by ROC-AUC on the
   held-out part;
4. **calibration** and, for ``ensemble_fitted``, the **blend weights**: fitted on the
   held-out part's log-odds (Platt: ``sigmoid(b + a * blend)``);
5. the chosen members are refitted on all of the fold's training rows and score its test rows.

Every variant (:data:`~leadscore.models.training.candidates.VARIANTS`) is a blend of the
same member fits (:mod:`leadscore.models.training.pool`), so they are compared on the same
folds (:mod:`leadscore.models.training.folds`) at little extra cost; the baselines are
stock models with default parameters. Which variant is deployed is decided by
:func:`~leadscore.models.training.candidates.choose`.

Everything is a plain function of picklable arguments: run it in a process pool off the
event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from threadpoolctl import threadpool_limits

from leadscore.models.engine.compiled import CompiledModel
from leadscore.models.training.candidates import (
    BASELINES,
    DEFAULT_VARIANT,
    SEARCHES,
    VARIANTS,
    TrainConfig,
    baseline_probability,
    choose,
    used_kinds,
)
from leadscore.models.training.ensemble import LeadScoringEnsemble
from leadscore.models.training.folds import InsufficientDataError, TrainingData, outer_folds
from leadscore.models.training.pool import MemberPool, blend_plan, fit_pool, variant_probability
from leadscore.models.training.report import evaluate, fold_summary

__all__ = ["TrainResult", "train"]

#: ``progress(stage, done, total)``, e.g. ``("fold 2/5", 2, 6)``.
Progress = Callable[[str, int, int], None]


@dataclass(eq=False)
class TrainResult:
    """The deployable model and the evidence."""

    model: CompiledModel
    estimator: LeadScoringEnsemble
    variant: str
    report: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


def _check(data: TrainingData, config: TrainConfig) -> None:
    if config.folds < 2:
        raise ValueError(f"folds must be at least 2, got {config.folds}")
    if config.search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {config.search!r}")
    unknown = [n for n in config.compare if n not in VARIANTS and n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown models to compare {unknown}; known: {[*VARIANTS, *BASELINES]}")
    if config.variant != "auto" and config.variant not in VARIANTS:
        raise ValueError(
            f"variant must be 'auto' or one of {list(VARIANTS)}, got {config.variant!r}"
        )
    X, y = np.asarray(data.X), np.asarray(data.y)
    if X.ndim != 2 or len(X) != len(y) or len(X) == 0:
        raise ValueError(
            f"X must be (n, n_features) with one label per row; got {X.shape} and {y.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError("X has NaN or infinite values; the feature pipeline must fill them")
    for name, values in (("times", data.times), ("groups", data.groups)):
        if values is not None and len(values) != len(y):
            raise ValueError(
                f"{name} has {len(values)} entries for {len(y)} rows; give one per row"
            )
    if data.times is not None and not np.isfinite(np.asarray(data.times, dtype=np.float64)).all():
        bad = int((~np.isfinite(np.asarray(data.times, dtype=np.float64))).sum())
        raise ValueError(f"times has {bad} missing or infinite values; every row needs a time")
    classes = np.unique(y)
    if len(classes) != 2 or set(classes.tolist()) != {0, 1}:
        raise InsufficientDataError(
            f"training needs 0/1 labels with both classes present, got classes {classes.tolist()}"
        )
    need = 2 * config.folds
    for label in (0, 1):
        members = y == label
        units = (
            len(np.unique(data.groups[members])) if data.groups is not None else int(members.sum())
        )
        if units < need:
            unit = "leads" if data.groups is not None else "rows"
            raise InsufficientDataError(
                f"class {label} appears in only {units} {unit}; {config.folds}-fold validation with "
                f"a held-out part per fold needs at least {need} (gather more outcomes or lower folds)"
            )


# --- the run -------------------------------------------------------------------------------


def train(
    data: TrainingData, config: TrainConfig = TrainConfig(), progress: Progress | None = None
) -> TrainResult:
    """Cross-validate every candidate on the same folds, choose one, fit it on all rows.

    Returns:
        the compiled chosen model, its scikit-learn estimator, and the report
        (:mod:`leadscore.models.training.report`'s contract).

    Raises:
        InsufficientDataError: too few rows of a class, or no usable time folds.
        ValueError: a bad configuration or matrix.
    """
    _check(data, config)
    # OpenMP pools (HistGradientBoosting, LightGBM, BLAS) spin-wait when they oversubscribe
    # the cores: one 1.6k-row HistGradientBoosting fit took 97 s beside other busy processes.
    with threadpool_limits(limits=max(config.n_jobs, 1)):
        return _train(data, config, progress)


def _train(data: TrainingData, config: TrainConfig, progress: Progress | None) -> TrainResult:
    X, y = np.asarray(data.X, dtype=np.float64), np.asarray(data.y, dtype=np.int64)
    scheme, folds = outer_folds(data, config.folds, config.seed)
    variants = [n for n in config.compare if n in VARIANTS]
    if DEFAULT_VARIANT not in variants:
        variants.insert(0, DEFAULT_VARIANT)
    if config.variant != "auto" and config.variant not in variants:
        variants.append(config.variant)
    baselines = [n for n in config.compare if n in BASELINES]
    kinds = {k for v in variants for k, w in used_kinds(v)}
    total = len(folds) + 1
    fit_seconds: dict[str, float] = {}

    per_fold: dict[str, list[dict[str, Any]]] = {n: [] for n in (*variants, *baselines)}
    oof: dict[str, list[np.ndarray]] = {n: [] for n in (*variants, *baselines)}
    oof_y: list[np.ndarray] = []
    selected: list[int] = []
    for i, (train_idx, test_idx) in enumerate(folds):
        if progress:
            progress(f"fold {i + 1}/{len(folds)}", i, total)
        seed = config.seed + i
        started = time.perf_counter()
        pool = fit_pool(data, train_idx, kinds, config, seed)
        fit_seconds["members"] = fit_seconds.get("members", 0.0) + time.perf_counter() - started
        selected.append(len(pool.columns))
        majority = int(y[train_idx].mean() >= 0.5)
        for name in variants:
            kinds_v, w, calib = blend_plan(name, pool)
            p = variant_probability(kinds_v, w, calib, pool, X[test_idx])
            per_fold[name].append(evaluate(y[test_idx], p, majority_class=majority))
            oof[name].append(p)
        for name in baselines:
            started = time.perf_counter()
            p = baseline_probability(name, X, y, train_idx, test_idx, seed)
            fit_seconds[name] = fit_seconds.get(name, 0.0) + time.perf_counter() - started
            per_fold[name].append(evaluate(y[test_idx], p, majority_class=majority))
            oof[name].append(p)
        oof_y.append(y[test_idx])

    chosen, reason = choose(config.variant, variants, per_fold)
    if progress:
        progress("final fit on all rows", len(folds), total)
    started = time.perf_counter()
    everything = np.arange(len(y))
    final_kinds = {k for k, _ in used_kinds(chosen)}
    pool = fit_pool(data, everything, final_kinds, config, config.seed + len(folds))
    kinds_c, w, calib = blend_plan(chosen, pool)
    estimator = _assemble(kinds_c, w, calib, pool, X.shape[1], config.seed)
    final_seconds = time.perf_counter() - started
    model = estimator.compile(data.feature_names)
    if progress:
        progress("done", total, total)

    y_all = np.concatenate(oof_y)
    summaries = {name: fold_summary(per_fold[name]) for name in (*variants, *baselines)}
    report = {
        "data": {
            "source": data.source,
            "rows": int(len(y)),
            "positives": int(y.sum()),
            "positive_rate": float(y.mean()),
            "features": int(X.shape[1]),
            "cv": {"scheme": scheme, "folds": len(folds)},
        },
        "columns": [],
        "warnings": [],
        "models": [
            {
                "name": name,
                "description": VARIANTS[name][2] if name in VARIANTS else BASELINES[name],
                "deployable": name in VARIANTS,
                "cv": summaries[name],
                # the cross-validation is the time-ordered check when rows have times
                "time_split": (
                    {"scheme": scheme, "folds": len(folds), "skipped": [], **summaries[name]}
                    if data.times is not None
                    else None
                ),
                "oof": evaluate(y_all, np.concatenate(oof[name])),
                # the variants share one set of member fits per fold: their time, all folds
                "fit_seconds": fit_seconds.get(name, fit_seconds.get("members", 0.0)),
                "fit_shared": name in VARIANTS,
            }
            for name in (*variants, *baselines)
        ],
        "chosen": {"name": chosen, "reason": reason, "threshold": 0.5},
        "final": {
            "weights": [float(v) for v in estimator.weights_],
            "calibration": [float(calib[0]), float(calib[1])],
            "params": {k: pool.params.get(k, {}) for k in kinds_c},
            "features_used": int(len(pool.columns)),
            "features_dropped": [
                data.feature_names[j] for j in np.setdiff1d(np.arange(X.shape[1]), pool.columns)
            ],
            "features_used_per_fold": selected,
            "fit_seconds": final_seconds,
        },
        "feature_importance": _importance(model, X, config.seed),
    }
    return TrainResult(
        model=model,
        estimator=estimator,
        variant=chosen,
        report=report,
        params=estimator.get_params(),
    )


def _assemble(
    kinds: Sequence[str],
    w: np.ndarray,
    calib: tuple[float, float],
    pool: MemberPool,
    n_features: int,
    seed: int,
) -> LeadScoringEnsemble:
    """A fitted :class:`LeadScoringEnsemble` made of ``pool``'s members (no refit)."""
    booster = kinds[1]
    estimator = LeadScoringEnsemble(
        booster=booster,
        weights=cast(tuple[float, float, float], tuple(float(v) for v in w)),  # one per kind
        rf_params=pool.params.get("rf"),
        gb_params=pool.params.get(booster),
        lr_params=pool.params.get("lr"),
        calibration=calib,
        feature_indices=tuple(int(c) for c in pool.columns),
        random_state=seed,
    )
    estimator.classes_ = np.array([0, 1])
    estimator.n_features_in_ = n_features
    estimator.estimators_ = [pool.members.get(k) if w[i] > 0 else None for i, k in enumerate(kinds)]
    estimator.weights_ = np.asarray(w, dtype=np.float64)
    estimator.prior_ = pool.prior
    estimator.columns_ = pool.columns
    return estimator


def _importance(
    model: CompiledModel, X: np.ndarray, seed: int, rows: int = 2000
) -> list[dict[str, Any]]:
    """Mean absolute SHAP value (log-odds) per feature on a sample, largest first."""
    rng = np.random.default_rng(seed)
    sample = X[rng.choice(len(X), min(rows, len(X)), replace=False)]
    _, phi = model.explain_log_odds(sample)
    mean_abs = np.abs(phi).mean(axis=0)
    order = np.argsort(-mean_abs)
    return [
        {"feature": model.feature_names[j], "importance": float(mean_abs[j])}
        for j in order
        if mean_abs[j] > 0
    ]
