"""Train the ensemble and measure it honestly: cross-validation, then a fit on all rows.

Everything here is a plain function of picklable arguments, so a caller can run it in a
``ProcessPoolExecutor`` (``loop.run_in_executor(pool, train_model, ts, ...)``); it never
touches the event loop, the network or the wall clock except to time itself.

Honesty rules:

- rows of one lead stay in one fold (``StratifiedGroupKFold``): a lead's snapshots are
  strongly correlated, and splitting them would grade the model on leads it has seen;
- nothing is tuned: hyperparameters are fixed before the folds are drawn, the decision
  threshold is 0.5, and the test folds are only ever scored;
- the time-ordered check trains on snapshots whose label was known at the cut
  (``t + horizon <= cut``) and tests on later snapshots, the way a deployed model works;
- accuracy is reported beside the majority-class accuracy of the same test rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from leadscore.models.dataset import TrainingSet
from leadscore.models.ensemble import LeadScoringEnsemble
from leadscore.models.features import DAY_S

__all__ = ["InsufficientDataError", "classification_metrics", "train_model"]

#: ``progress(stage, done, total)``: e.g. ``("cv", 2, 5)``; called from the training process.
Progress = Callable[[str, int, int], None]

METRIC_NAMES = (
    "accuracy",
    "majority_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
)
# A time fold is scored only if its training part has at least this many rows.
_MIN_TIME_FOLD_TRAIN_ROWS = 20


class InsufficientDataError(ValueError):
    """The training set cannot support the requested training or validation."""


def classification_metrics(
    y_true: np.ndarray, p1: np.ndarray, *, majority_class: int, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics of probabilities ``p1`` (of class 1) against 0/1 labels.

    Args:
        y_true: 0/1 labels, shape (n,).
        p1: predicted probability of 1, shape (n,).
        majority_class: the class a no-skill model predicts (the training majority).
        threshold: decision threshold for accuracy, precision, recall and F1.

    Returns:
        accuracy, majority_accuracy, precision, recall, f1, roc_auc, pr_auc, brier, log_loss;
        the ranking metrics are NaN when ``y_true`` has one class.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    p1 = np.asarray(p1, dtype=np.float64)
    pred = (p1 >= threshold).astype(np.int64)
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "majority_accuracy": float(np.mean(y_true == majority_class)),
        "precision": float(precision_score(y_true, pred, zero_division=0.0)),
        "recall": float(recall_score(y_true, pred, zero_division=0.0)),
        "f1": float(f1_score(y_true, pred, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y_true, p1)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, p1)) if both else float("nan"),
        "brier": float(brier_score_loss(y_true, p1)),
        "log_loss": float(log_loss(y_true, p1, labels=[0, 1])),
    }


def train_model(
    training_set: TrainingSet,
    *,
    seed: int,
    cv_folds: int = 5,
    time_folds: int = 3,
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[LeadScoringEnsemble, dict[str, Any]]:
    """Cross-validate the ensemble on ``training_set``, then fit it on all of it.

    Args:
        training_set: from :func:`leadscore.models.dataset.build_training_set`.
        seed: seeds the folds and the model.
        cv_folds: folds of the stratified, lead-grouped cross-validation (>= 2).
        time_folds: rolling-origin folds of the time-ordered check; 0 skips it. Folds
            whose training part is too small or one-class are skipped and counted.
        params: hyperparameters for :class:`LeadScoringEnsemble` (``random_state`` is
            set from ``seed``).
        progress: optional ``progress(stage, done, total)``; it must be picklable to cross
            a process boundary.

    Returns:
        ``(model, metrics)``: the model fitted on every row, and a JSON-ready dict with
        ``n_rows``, ``n_leads``, ``positive_rate``, ``cv`` (mean of each metric over the
        folds, and ``std``), ``time_split`` (same shape, or ``None``), ``params`` and
        ``fit_seconds``.

    Raises:
        InsufficientDataError: fewer than two classes, or too few positive leads for
            ``cv_folds`` folds.
    """
    if cv_folds < 2:
        raise ValueError(f"cv_folds must be at least 2, got {cv_folds}")
    if time_folds < 0:
        raise ValueError(f"time_folds must be >= 0 (0 skips the time split), got {time_folds}")
    X, y = training_set.X, np.asarray(training_set.y, dtype=np.int64)
    groups = training_set.lead_ids
    model_params = {**(params or {}), "random_state": seed}
    LeadScoringEnsemble(**model_params)  # fail fast on a bad hyperparameter name
    _check_enough(y, groups, cv_folds)

    n_time = time_folds if training_set.snapshot_times is not None else 0
    total = cv_folds + n_time + 1
    step = 0

    def report(stage: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(stage, step, total)

    splitter = (
        StratifiedGroupKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        if groups is not None
        else StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    )
    cv_results = []
    for train_idx, test_idx in splitter.split(X, y, groups):
        cv_results.append(_fit_and_score(model_params, X, y, train_idx, test_idx))
        report("cv")

    time_split = None
    if n_time:
        time_split = _time_split(
            training_set, model_params, n_time, on_fold=lambda: report("time_split")
        )

    started = time.perf_counter()
    model = LeadScoringEnsemble(**model_params).fit(X, y)
    fit_seconds = time.perf_counter() - started
    report("fit")

    metrics: dict[str, Any] = {
        "n_rows": int(len(y)),
        "n_leads": int(len(np.unique(groups))) if groups is not None else None,
        "positive_rate": float(y.mean()),
        "threshold": 0.5,
        "cv": {
            "scheme": "stratified_group_kfold" if groups is not None else "stratified_kfold",
            "folds": cv_folds,
            **_summarize(cv_results),
        },
        "time_split": time_split,
        "params": model.get_params(),
        "fit_seconds": fit_seconds,
    }
    return model, metrics


def _check_enough(y: np.ndarray, groups: np.ndarray | None, folds: int) -> None:
    classes = np.unique(y)
    if len(classes) != 2 or set(classes.tolist()) != {0, 1}:
        raise InsufficientDataError(
            f"training needs 0/1 labels with both classes present, got classes {classes.tolist()}"
        )
    for label in (0, 1):
        members = y == label
        units = len(np.unique(groups[members])) if groups is not None else int(members.sum())
        if units < folds:
            raise InsufficientDataError(
                f"class {label} appears in only {units} "
                f"{'leads' if groups is not None else 'rows'}; {folds}-fold cross-validation "
                f"needs at least {folds} (gather more outcomes or lower cv_folds)"
            )


def _fit_and_score(
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
) -> dict[str, float]:
    model = LeadScoringEnsemble(**params).fit(X[train_idx], y[train_idx])
    majority = int(y[train_idx].mean() >= 0.5)
    return classification_metrics(
        y[test_idx], model.predict_proba(X[test_idx])[:, 1], majority_class=majority
    )


def _time_split(
    ts: TrainingSet, params: Mapping[str, Any], folds: int, on_fold: Callable[[], None]
) -> dict[str, Any]:
    """Rolling-origin evaluation with a purge of one horizon before each cut.

    The snapshot times are cut at their quantiles ``i / (folds + 1)``; fold ``i`` tests on
    the snapshots between cut ``i`` and cut ``i + 1`` and trains on every snapshot whose
    label was already known at cut ``i``.
    """
    X, y, t = ts.X, np.asarray(ts.y, dtype=np.int64), ts.snapshot_times
    horizon_s = ts.horizon_days * DAY_S
    cuts = np.quantile(t, np.arange(1, folds + 2) / (folds + 1))
    results, skipped = [], []
    for i in range(folds):
        train_idx = np.flatnonzero(t + horizon_s <= cuts[i])
        test_idx = np.flatnonzero((t > cuts[i]) & (t <= cuts[i + 1]))
        reason = None
        if len(train_idx) < _MIN_TIME_FOLD_TRAIN_ROWS:
            reason = f"{len(train_idx)} training rows before the purged cut"
        elif len(np.unique(y[train_idx])) < 2:
            reason = "training rows have one class"
        elif len(np.unique(y[test_idx])) < 2:
            reason = "test rows have one class"
        if reason is None:
            results.append(_fit_and_score(params, X, y, train_idx, test_idx))
        else:
            skipped.append({"fold": i, "reason": reason})
        on_fold()
    summary: dict[str, Any] = {
        "scheme": "rolling_origin_purged",
        "folds": len(results),
        "skipped": skipped,
    }
    if results:
        summary.update(_summarize(results))
    return summary


def _summarize(results: list[dict[str, float]]) -> dict[str, Any]:
    """Mean of each metric over folds, with the standard deviations under ``std``."""
    out: dict[str, Any] = {}
    std: dict[str, float] = {}
    for name in METRIC_NAMES:
        values = np.array([r[name] for r in results], dtype=np.float64)
        out[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        std[name] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
    out["std"] = std
    return out
