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

Every variant (:data:`VARIANTS`) is a blend of the same member fits, so they are compared
on the same folds at little extra cost; the baselines (:data:`BASELINES`) are stock models
with default parameters. The cross-validation is stratified (lead-grouped when rows carry
lead ids), or time-ordered with an expanding window when rows have times: then a fold
trains only on rows whose label was known before its test period (``t + horizon <= cut``).

Which model is deployed: the 40/40/20 ensemble users asked for, unless another deployable
variant beats its cross-validated ROC-AUC on the same folds by more than the folds' noise
(paired standard error, at least :data:`AUC_MARGIN`) without a worse Brier score; the
report says which and why. ``variant=`` forces one.

Everything is a plain function of picklable arguments: run it in a process pool off the
event loop.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from leadscore.models.engine.compiled import CompiledModel
from leadscore.models.engine.links import sigmoid
from leadscore.models.training.ensemble import (
    DEFAULT_WEIGHTS,
    LeadScoringEnsemble,
    make_member,
    member_log_odds,
)
from leadscore.models.training.report import evaluate, fold_summary

__all__ = [
    "BASELINES",
    "InsufficientDataError",
    "TrainConfig",
    "TrainingData",
    "TrainResult",
    "VARIANTS",
    "train",
]

#: ``progress(stage, done, total)``, e.g. ``("fold 2/5", 2, 6)``.
Progress = Callable[[str, int, int], None]

#: Deployable candidates: name -> (member kinds, weights or "fitted", description).
VARIANTS: dict[str, tuple[tuple[str, str, str], tuple[float, float, float] | str, str]] = {
    "ensemble": (
        ("rf", "gb", "lr"),
        DEFAULT_WEIGHTS,
        "RandomForest + GradientBoosting + LogisticRegression, 40/40/20 (the default)",
    ),
    "ensemble_hgb": (
        ("rf", "hgb", "lr"),
        DEFAULT_WEIGHTS,
        "RandomForest + HistGradientBoosting + LogisticRegression, 40/40/20",
    ),
    "ensemble_fitted": (
        ("rf", "gb", "lr"),
        "fitted",
        "RandomForest + GradientBoosting + LogisticRegression, weights fitted on held-out rows",
    ),
    "random_forest": (("rf", "gb", "lr"), (1.0, 0.0, 0.0), "depth-capped RandomForest alone"),
    "gradient_boosting": (("rf", "gb", "lr"), (0.0, 1.0, 0.0), "tuned GradientBoosting alone"),
    "hist_gradient_boosting": (
        ("rf", "hgb", "lr"),
        (0.0, 1.0, 0.0),
        "tuned HistGradientBoosting alone",
    ),
    "logistic_regression": (("rf", "gb", "lr"), (0.0, 0.0, 1.0), "LogisticRegression alone"),
}
#: Stock models with default parameters, for comparison only (not deployable).
BASELINES: dict[str, str] = {
    "hgb_default": "HistGradientBoostingClassifier(), default parameters",
    "lgbm_default": "LGBMClassifier(), default parameters",
}
DEFAULT_VARIANT = "ensemble"
#: Smallest ROC-AUC gain over the default that can make another variant the choice.
AUC_MARGIN = 0.003

#: Candidates of the quick search, per member kind (the first is the default), cheapest to
#: explain first. Depth is capped at 8 for every tree: exact TreeSHAP costs O(leaves x depth)
#: per row, and one search that picked a depth-10 forest and unbounded leaf-wise boosting
#: (100k rows) explained 2,300 rows/s where the default does 7,000-11,000.
SEARCH_SPACE: dict[str, list[dict[str, Any]]] = {
    "rf": [
        {"max_depth": 8, "min_samples_leaf": 20},
        {"max_depth": 6, "min_samples_leaf": 50},
        {"max_depth": 8, "min_samples_leaf": 10, "max_features": 0.3},
    ],
    "gb": [
        {"max_depth": 3, "learning_rate": 0.1},
        {"max_depth": 2, "learning_rate": 0.1},
        {"max_depth": 4, "learning_rate": 0.05},
        # leaf-wise like LightGBM: up to 31 leaves grown best first, paths of at most 6
        {"max_depth": 6, "max_leaf_nodes": 31, "min_samples_leaf": 20, "learning_rate": 0.1},
    ],
    "hgb": [
        {},
        {"learning_rate": 0.05, "max_iter": 600},
        {"max_leaf_nodes": 15, "l2_regularization": 1.0},
    ],
    "lr": [{"C": 1.0}, {"C": 0.05}, {"C": 0.005}],
}
SEARCHES = ("none", "quick")
#: Held-out ROC-AUC differences this small are noise: the cheaper candidate is kept.
_SEARCH_TIE_AUC = 0.001
_HOLDOUT_SHARE = 0.2
_MIN_GAIN_SHARE = 0.001
_MIN_FEATURES = 5
#: Rows above this are subsampled for the search fits (the refit uses every row).
_MAX_SEARCH_ROWS = 30_000


class InsufficientDataError(ValueError):
    """The data cannot support training or honest validation; the message says why."""


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Rows to train on.

    Attributes:
        X: feature matrix (n, n_features), float64, no NaN.
        y: 0/1 labels (n,).
        feature_names: names of ``X``'s columns.
        groups: a group id per row (e.g. the lead of a snapshot): a group stays in one fold.
        times: event time per row (epoch seconds): time-ordered validation when given.
        horizon_s: a row's label is known ``horizon_s`` after its time (purged at cuts).
        source: where the rows came from, for the report.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    groups: np.ndarray | None = None
    times: np.ndarray | None = None
    horizon_s: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``variant="auto"`` applies the rule in the module notes."""

    folds: int = 5
    search: str = "quick"
    select_features: bool = True
    variant: str = "auto"
    compare: tuple[str, ...] = (*VARIANTS, *BASELINES)
    seed: int = 0
    n_jobs: int = 1


@dataclass(eq=False)
class TrainResult:
    """The deployable model and the evidence."""

    model: CompiledModel
    estimator: LeadScoringEnsemble
    variant: str
    report: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


# --- the pool of member fits shared by all variants ----------------------------------------


@dataclass(eq=False)
class _Pool:
    """Members fitted on one training part, with their held-out log-odds."""

    columns: np.ndarray
    members: dict[str, Any]
    params: dict[str, dict[str, Any]]
    prior: float
    holdout_z: dict[str, np.ndarray]
    holdout_y: np.ndarray

    def log_odds(self, kind: str, X: np.ndarray) -> np.ndarray:
        return member_log_odds(kind, self.members[kind], X[:, self.columns], prior=self.prior)


def _fit_pool(
    data: TrainingData, train_idx: np.ndarray, kinds: set[str], config: TrainConfig, seed: int
) -> _Pool:
    X, y = data.X, np.asarray(data.y, dtype=np.int64)
    inner, holdout = _inner_split(data, train_idx, seed)
    columns = (
        _select_features(X[inner], y[inner], seed)
        if config.select_features
        else np.arange(X.shape[1])
    )
    search_rows = inner
    if len(inner) > _MAX_SEARCH_ROWS:
        search_rows = np.sort(
            np.random.default_rng(seed).choice(inner, _MAX_SEARCH_ROWS, replace=False)
        )
    Xi, yi = X[np.ix_(search_rows, columns)], y[search_rows]
    Xh, yh = X[np.ix_(holdout, columns)], y[holdout]

    members: dict[str, Any] = {}
    params: dict[str, dict[str, Any]] = {}
    holdout_z: dict[str, np.ndarray] = {}
    for kind in sorted(kinds):
        candidates = SEARCH_SPACE[kind] if config.search == "quick" else SEARCH_SPACE[kind][:1]
        best: tuple[float, dict[str, Any], np.ndarray] | None = None
        for cand in candidates:
            member = make_member(kind, cand, seed=seed, n_jobs=config.n_jobs).fit(Xi, yi)
            z = member_log_odds(kind, member, Xh, prior=float(yi.mean()))
            auc = _auc(yh, z)
            # A later (costlier) candidate must win by more than _SEARCH_TIE_AUC.
            if best is None or auc > best[0] + _SEARCH_TIE_AUC:
                best = (auc, cand, z)
        if best is None:  # pragma: no cover - every kind has at least one candidate
            raise RuntimeError(f"no search candidate for {kind}")
        params[kind], holdout_z[kind] = dict(best[1]), best[2]
        members[kind] = make_member(kind, params[kind], seed=seed, n_jobs=config.n_jobs).fit(
            X[np.ix_(train_idx, columns)], y[train_idx]
        )
    return _Pool(
        columns=columns,
        members=members,
        params=params,
        prior=float(y[train_idx].mean()),
        holdout_z=holdout_z,
        holdout_y=yh,
    )


def _inner_split(data: TrainingData, idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The inner training part and the held-out part of ``idx``."""
    y = np.asarray(data.y)[idx]
    if data.times is not None:
        t = data.times[idx]
        cut = np.quantile(t, 1.0 - _HOLDOUT_SHARE)
        inner = idx[t + data.horizon_s <= cut]
        holdout = idx[t > cut]
        if _both_classes(data.y, inner) and _both_classes(data.y, holdout):
            return inner, holdout
    groups = data.groups[idx] if data.groups is not None else None
    n_splits = round(1 / _HOLDOUT_SHARE)
    splitter = (
        StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        if groups is not None
        else StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    )
    a, b = next(splitter.split(np.zeros(len(idx)), y, groups))
    return idx[a], idx[b]


def _both_classes(y: np.ndarray, idx: np.ndarray) -> bool:
    return len(idx) > 0 and len(np.unique(np.asarray(y)[idx])) == 2


def _select_features(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Columns carrying at least 0.1 % of a quick LightGBM's split gain (at least 5)."""
    import lightgbm

    model = lightgbm.LGBMClassifier(
        n_estimators=100, importance_type="gain", random_state=seed, n_jobs=1, verbose=-1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    gain = np.asarray(model.feature_importances_, dtype=np.float64)
    if gain.sum() <= 0:
        return np.arange(X.shape[1])
    keep = np.flatnonzero(gain / gain.sum() >= _MIN_GAIN_SHARE)
    if len(keep) < _MIN_FEATURES:
        # Pad with the next-best columns that vary at all (a constant column can say nothing).
        varying = np.flatnonzero(X.min(axis=0) < X.max(axis=0))
        ranked = [j for j in np.argsort(-gain, kind="stable") if j in set(varying)]
        keep = np.sort(np.asarray(ranked[: max(_MIN_FEATURES, len(keep))], dtype=np.int64))
        if len(keep) == 0:
            keep = np.arange(X.shape[1])
    return keep


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else 0.5


# --- blending and calibration --------------------------------------------------------------


def _fit_logistic(Z: np.ndarray, y: np.ndarray, *, nonneg: bool) -> tuple[np.ndarray, float]:
    """Unregularized logistic regression of ``y`` on the columns of ``Z`` (n, k).

    Returns ``(coef (k,), intercept)``; with ``nonneg`` the coefficients are kept >= 0.
    """
    y = np.asarray(y, dtype=np.float64)
    k = Z.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + Z @ theta[1:]
        # log(1 + e^z) - y z, stably
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        r = sigmoid(z) - y
        return float(nll), np.concatenate([[r.sum()], Z.T @ r])

    base = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    theta0 = np.concatenate([[np.log(base / (1 - base))], np.full(k, 1.0 / k)])
    bounds = [(None, None)] + [(0.0, None) if nonneg else (None, None)] * k
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    return result.x[1:], float(result.x[0])


def _blend_plan(
    variant: str, pool: _Pool
) -> tuple[tuple[str, str, str], np.ndarray, tuple[float, float]]:
    """Kinds, normalized weights and Platt ``(a, b)`` of ``variant``, from ``pool``'s held-out rows."""
    kinds, weights, _ = VARIANTS[variant]
    if weights == "fitted":
        Z = np.column_stack([pool.holdout_z[k] for k in kinds])
        coef, intercept = _fit_logistic(Z, pool.holdout_y, nonneg=True)
        if coef.sum() <= 0:
            w = np.asarray(DEFAULT_WEIGHTS) / sum(DEFAULT_WEIGHTS)
        else:
            return kinds, coef / coef.sum(), (float(coef.sum()), intercept)
    else:
        w = np.asarray(weights, dtype=np.float64) / sum(weights)
    s = sum(w[i] * pool.holdout_z[k] for i, k in enumerate(kinds) if w[i] > 0)
    (a,), b = _fit_logistic(np.asarray(s).reshape(-1, 1), pool.holdout_y, nonneg=True)
    if a <= 0:  # the blend does not rank the held-out rows at all: keep its own scale
        a, b = 1.0, 0.0
    return kinds, w, (float(a), float(b))


def _variant_probability(
    kinds: Sequence[str], w: np.ndarray, calib: tuple[float, float], pool: _Pool, X: np.ndarray
) -> np.ndarray:
    s = np.zeros(X.shape[0])
    for i, kind in enumerate(kinds):
        if w[i] > 0:
            s += w[i] * pool.log_odds(kind, X)
    return sigmoid(calib[1] + calib[0] * s)


def _baseline_probability(
    name: str, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> np.ndarray:
    if name == "hgb_default":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model: Any = HistGradientBoostingClassifier(random_state=seed)
    elif name == "lgbm_default":
        import lightgbm

        model = lightgbm.LGBMClassifier(random_state=seed, n_jobs=1, verbose=-1)
    else:  # pragma: no cover - guarded by _check_config
        raise ValueError(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[train], y[train])
        return model.predict_proba(X[test])[:, 1]


# --- folds ---------------------------------------------------------------------------------


def _outer_folds(
    data: TrainingData, folds: int, seed: int
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    y = np.asarray(data.y, dtype=np.int64)
    if data.times is not None:
        order = np.argsort(data.times, kind="stable")
        blocks = np.array_split(order, folds + 1)
        out = []
        for i in range(1, folds + 1):
            test = np.sort(blocks[i])
            cut = data.times[test].min()
            train = np.flatnonzero(data.times + data.horizon_s < cut)
            if _both_classes(y, train) and _both_classes(y, test) and len(train) >= 50:
                out.append((train, test))
        if len(out) < 2:
            raise InsufficientDataError(
                f"time-ordered validation found only {len(out)} usable folds of {folds} (each "
                "needs both classes before and inside its test period and 50 training rows); "
                "use fewer folds or drop the time column"
            )
        return "time_ordered_expanding", out
    if data.groups is not None:
        splitter: Any = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        scheme = "stratified_group_kfold"
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scheme = "stratified_kfold"
    return scheme, list(splitter.split(np.zeros(len(y)), y, data.groups))


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
    scheme, folds = _outer_folds(data, config.folds, config.seed)
    variants = [n for n in config.compare if n in VARIANTS]
    if DEFAULT_VARIANT not in variants:
        variants.insert(0, DEFAULT_VARIANT)
    if config.variant != "auto" and config.variant not in variants:
        variants.append(config.variant)
    baselines = [n for n in config.compare if n in BASELINES]
    kinds = {k for v in variants for k, w in _used_kinds(v)}
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
        pool = _fit_pool(data, train_idx, kinds, config, seed)
        fit_seconds["members"] = fit_seconds.get("members", 0.0) + time.perf_counter() - started
        selected.append(len(pool.columns))
        majority = int(y[train_idx].mean() >= 0.5)
        for name in variants:
            kinds_v, w, calib = _blend_plan(name, pool)
            p = _variant_probability(kinds_v, w, calib, pool, X[test_idx])
            per_fold[name].append(evaluate(y[test_idx], p, majority_class=majority))
            oof[name].append(p)
        for name in baselines:
            started = time.perf_counter()
            p = _baseline_probability(name, X, y, train_idx, test_idx, seed)
            fit_seconds[name] = fit_seconds.get(name, 0.0) + time.perf_counter() - started
            per_fold[name].append(evaluate(y[test_idx], p, majority_class=majority))
            oof[name].append(p)
        oof_y.append(y[test_idx])

    chosen, reason = _choose(config.variant, variants, per_fold)
    if progress:
        progress("final fit on all rows", len(folds), total)
    started = time.perf_counter()
    everything = np.arange(len(y))
    final_kinds = {k for k, _ in _used_kinds(chosen)}
    pool = _fit_pool(data, everything, final_kinds, config, config.seed + len(folds))
    kinds_c, w, calib = _blend_plan(chosen, pool)
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


def _used_kinds(variant: str) -> list[tuple[str, float]]:
    kinds, weights, _ = VARIANTS[variant]
    if weights == "fitted":
        return [(k, 1.0) for k in kinds]
    return [(k, w) for k, w in zip(kinds, weights) if w > 0]


def _choose(
    forced: str, variants: Sequence[str], per_fold: Mapping[str, list[dict[str, Any]]]
) -> tuple[str, str]:
    """The variant to deploy, and why (see the module notes)."""
    if forced != "auto":
        return forced, f"chosen by configuration (variant={forced!r})"
    base = np.array([f["roc_auc"] for f in per_fold[DEFAULT_VARIANT]], dtype=np.float64)
    base_brier = float(np.mean([f["brier"] for f in per_fold[DEFAULT_VARIANT]]))
    best, best_gain, why = DEFAULT_VARIANT, 0.0, ""
    for name in variants:
        if name == DEFAULT_VARIANT:
            continue
        auc = np.array([f["roc_auc"] for f in per_fold[name]], dtype=np.float64)
        diff = auc - base
        gain = float(np.mean(diff))
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        brier = float(np.mean([f["brier"] for f in per_fold[name]]))
        if gain > max(AUC_MARGIN, se) and brier <= base_brier + 1e-4 and gain > best_gain:
            best, best_gain = name, gain
            why = (
                f"{name} beat the default 40/40/20 ensemble by {gain:+.4f} ROC-AUC over "
                f"{len(diff)} folds (paired standard error {se:.4f}, margin {AUC_MARGIN}) with a "
                f"Brier score of {brier:.4f} against {base_brier:.4f}"
            )
    if best == DEFAULT_VARIANT:
        why = (
            "the default 40/40/20 ensemble: no other deployable variant beat its cross-validated "
            f"ROC-AUC by more than the fold-to-fold noise (at least {AUC_MARGIN}) without a worse "
            "Brier score"
        )
    return best, why


def _assemble(
    kinds: Sequence[str],
    w: np.ndarray,
    calib: tuple[float, float],
    pool: _Pool,
    n_features: int,
    seed: int,
) -> LeadScoringEnsemble:
    """A fitted :class:`LeadScoringEnsemble` made of ``pool``'s members (no refit)."""
    booster = kinds[1]
    estimator = LeadScoringEnsemble(
        booster=booster,
        weights=tuple(float(v) for v in w),  # type: ignore[arg-type]
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
