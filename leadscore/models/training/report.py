"""The model evaluation report: metrics of scored predictions, its contract, and its JSON file.

``leadscore train`` cross-validates several candidate models on the same folds, then prints
this report, saves it with the model and writes it as JSON (``--report PATH``). This module
computes the metrics (:func:`evaluate`, :func:`fold_summary`, :func:`choose_threshold`) and
writes the report (:func:`write_json`); :func:`~leadscore.models.training.report_render.render`
prints it; the trainer builds the dict. Every value here is JSON-ready: plain floats, ints,
strings and lists, NaN as ``None``.

The report dict (the contract between the trainer, ``render`` and the JSON file)::

    {"data": {"source": str, "rows": int, "positives": int, "positive_rate": float,
              "features": int, "cv": {"scheme": str, "folds": int}},
     "columns": [{...}, ...],      # per-column decisions, free-form dicts
     "warnings": [str, ...],       # e.g. a column that leaks the label
     "models": [                   # one entry per model compared, same folds for all
         {"name": str, "description": str,
          "cv": fold_summary(per-fold evaluate()),  # means of SCALAR_METRICS, "std": {...}
          "time_split": {...} | None,               # same shape, plus scheme/folds/skipped
          "oof": evaluate(out-of-fold predictions, threshold=chosen threshold),
          "fit_seconds": float},
         ...],
     "chosen": {"name": str, "reason": str, "threshold": float},  # name is one of models
     "feature_importance": [{"feature": str, "importance": float}, ...]}  # of the chosen model

:func:`check_report` enforces the minimum: ``data``, ``chosen`` naming a compared model, and
at least one model whose ``cv`` has ``REQUIRED_CV_METRICS``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
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

__all__ = [
    "REQUIRED_CV_METRICS",
    "SCALAR_METRICS",
    "ReportError",
    "check_report",
    "choose_threshold",
    "evaluate",
    "fold_summary",
    "jsonable",
    "write_json",
]

#: The scalar metrics of :func:`evaluate`, in report order; :func:`fold_summary` averages them.
SCALAR_METRICS = (
    "accuracy",
    "majority_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "base_rate",
)
#: What the JSON report must hold for every model compared (from cross-validation).
REQUIRED_CV_METRICS = ("accuracy", "roc_auc", "pr_auc", "brier", "f1")
THRESHOLD_RULES = ("f1", "0.5")
N_BINS = 10


class ReportError(ValueError):
    """A report dict does not follow the contract in this module's docstring."""


def evaluate(
    y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5, majority_class: int | None = None
) -> dict[str, Any]:
    """Score probabilities ``p`` of class 1 against 0/1 labels ``y``.

    Args:
        y: 0/1 labels, shape (n,).
        p: predicted probability of class 1, shape (n,), in [0, 1].
        threshold: a row is predicted positive when ``p >= threshold``.
        majority_class: the class a no-skill model predicts. Pass the *training* majority;
            ``None`` uses the majority of ``y`` itself (ties go to 1), which flatters the
            baseline slightly.

    Returns:
        The :data:`SCALAR_METRICS` (``pr_auc`` is average precision; ``roc_auc`` and
        ``pr_auc`` are ``None`` when ``y`` has one class), ``threshold``, ``rows``, and

        - ``lift_by_decile``: 10 rows, highest scores first, each ``{decile, rows, share,
          positives, rate, lift, cumulative_capture, min_score, max_score}``. Rows with
          tied scores that straddle a decile edge share their positives pro rata, so
          ``positives`` is a float and the row order of the input never matters.
        - ``calibration``: ``{"binning": "uniform", "bins": [...], "ece": float}`` with 10
          equal-width bins (fixed edges, so models and runs compare bin by bin; bin i holds
          ``i/10 < p <= (i+1)/10``, the first also 0, as in sklearn ``calibration_curve``).
          Each bin is ``{lower, upper, count, mean_predicted, observed_rate}``; the last two
          are ``None`` when the bin is empty. ``ece`` is the count-weighted mean of
          ``|observed_rate - mean_predicted|``.
        - ``confusion``: ``{"tp", "fp", "tn", "fn"}`` at ``threshold``.

    Raises:
        ValueError: ``y`` is not 0/1, ``p`` is outside [0, 1] or not finite, the shapes
            differ, or there are no rows.
    """
    y, p = _check_scores(y, p)
    pred = (p >= threshold).astype(np.int64)
    if majority_class is None:
        majority_class = int(y.mean() >= 0.5)
    both = len(np.unique(y)) == 2
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(y, pred)),
        "majority_accuracy": float(np.mean(y == majority_class)),
        "precision": float(precision_score(y, pred, zero_division=0.0)),
        "recall": float(recall_score(y, pred, zero_division=0.0)),
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "base_rate": float(y.mean()),
        "threshold": float(threshold),
        "rows": int(len(y)),
        "lift_by_decile": _lift_by_decile(y, p),
        "calibration": _calibration(y, p),
        "confusion": {
            "tp": int(np.sum((pred == 1) & (y == 1))),
            "fp": int(np.sum((pred == 1) & (y == 0))),
            "tn": int(np.sum((pred == 0) & (y == 0))),
            "fn": int(np.sum((pred == 0) & (y == 1))),
        },
    }
    return metrics


def fold_summary(per_fold: Sequence[Mapping[str, float | None]]) -> dict[str, Any]:
    """Mean and standard deviation (ddof=0) of each scalar metric over CV folds.

    A fold's ``None`` or NaN (e.g. ROC-AUC of a one-class fold) is left out of that metric;
    a metric with no finite value in any fold is ``None``.

    Args:
        per_fold: one dict per fold, e.g. :func:`evaluate` results. The metrics summarized
            are the :data:`SCALAR_METRICS` that the first fold has; every fold must have them.

    Returns:
        ``{metric: mean, ..., "std": {metric: std, ...}}``.

    Raises:
        ValueError: no folds, or a fold lacks a metric the first fold has.

    Examples:
        >>> fold_summary([{"accuracy": 0.5, "roc_auc": None}, {"accuracy": 1.0, "roc_auc": 0.75}])
        {'accuracy': 0.75, 'roc_auc': 0.75, 'std': {'accuracy': 0.25, 'roc_auc': 0.0}}
    """
    if not per_fold:
        raise ValueError("fold_summary needs at least one fold, got none")
    names = [name for name in SCALAR_METRICS if name in per_fold[0]]
    for i, fold in enumerate(per_fold):
        missing = [name for name in names if name not in fold]
        if missing:
            raise ValueError(f"fold {i} lacks {missing}; the first fold has {names}")
    out: dict[str, Any] = {}
    std: dict[str, float | None] = {}
    for name in names:
        values = np.array([_nan_if_none(fold[name]) for fold in per_fold], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[name] = float(values.mean()) if len(values) else None
        std[name] = float(values.std()) if len(values) else None
    out["std"] = std
    return out


def choose_threshold(y: np.ndarray, p: np.ndarray, *, rule: str = "f1") -> float:
    """The decision threshold (predict positive when ``p >= threshold``) under ``rule``.

    Args:
        y: 0/1 labels of out-of-fold predictions, shape (n,).
        p: the out-of-fold probabilities of class 1, shape (n,).
        rule: ``"f1"``: the score that maximizes F1 on ``(y, p)`` (the highest such score
            on ties, so fewer rows are flagged); ``"0.5"``: 0.5.

    Returns:
        The threshold, one of the values of ``p`` for ``"f1"``.

    Raises:
        ValueError: an unknown rule, bad scores, or (for ``"f1"``) no positive in ``y``.

    Examples:
        >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.8]))
        0.4
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y, p = _check_scores(y, p)
    if rule == "0.5":
        return 0.5
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("choose_threshold(rule='f1') needs a positive label; y has none")
    order = np.argsort(-p, kind="stable")
    p_desc, tp = p[order], np.cumsum(y[order])
    # the last row of each run of equal scores: flagging every row with p >= that score
    last = np.flatnonzero(np.r_[p_desc[1:] != p_desc[:-1], True])
    flagged = last + 1
    f1 = 2 * tp[last] / (flagged + positives)  # 2TP / (2TP + FP + FN), FP + TP = flagged
    return float(p_desc[last[int(np.argmax(f1))]])  # argmax: first = highest score on ties


def check_report(report: Mapping[str, Any]) -> None:
    """Raise :class:`ReportError` unless ``report`` holds the contract's minimum."""
    for key in ("data", "models", "chosen"):
        if key not in report:
            raise ReportError(f"report lacks {key!r}; it has {sorted(report)}")
    models = report["models"]
    if not models:
        raise ReportError("report['models'] is empty; the report compares at least one model")
    for i, model in enumerate(models):
        cv = model.get("cv") or {}
        missing = [name for name in REQUIRED_CV_METRICS if name not in cv]
        if "name" not in model or missing:
            raise ReportError(
                f"report['models'][{i}] needs 'name' and cv metrics {list(REQUIRED_CV_METRICS)}"
                f"; missing {(['name'] if 'name' not in model else []) + missing}"
            )
    names = [model["name"] for model in models]
    if report["chosen"].get("name") not in names:
        raise ReportError(
            f"report['chosen']['name'] is {report['chosen'].get('name')!r}, "
            f"not one of the compared models {names}"
        )


def write_json(report: Mapping[str, Any], path: Path) -> None:
    """Write ``report`` to ``path`` as indented strict JSON (NaN and inf as ``null``).

    The file is written beside ``path`` and renamed over it, so a reader sees the old file
    or the new one, never half of one. Missing parent directories are created.

    Raises:
        ReportError: ``report`` breaks the contract (see :func:`check_report`).
    """
    check_report(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- metrics helpers ---------------------------------------------------------------------


def _check_scores(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = np.asarray(y), np.asarray(p, dtype=np.float64)
    if y_arr.ndim != 1 or y_arr.shape != p_arr.shape or len(y_arr) == 0:
        raise ValueError(
            f"y and p must be non-empty 1-d arrays of one length, got shapes "
            f"{y_arr.shape} and {p_arr.shape}"
        )
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError(f"y must hold 0/1 labels, got values {np.unique(y_arr)[:5].tolist()}")
    if not (np.isfinite(p_arr).all() and p_arr.min() >= 0.0 and p_arr.max() <= 1.0):
        raise ValueError(
            f"p must be probabilities in [0, 1], got min {np.nanmin(p_arr)} and max "
            f"{np.nanmax(p_arr)}; NaN present: {bool(np.isnan(p_arr).any())}"
        )
    return y_arr.astype(np.int64), p_arr


def _lift_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    n, base_rate = len(y), float(y.mean())
    order = np.argsort(-p, kind="stable")
    p_desc = p[order]
    # each row's label replaced by the mean label of its tie group: ties split pro rata
    _, group, group_size = np.unique(p_desc, return_inverse=True, return_counts=True)
    y_shared = np.bincount(group, weights=y[order])[group] / group_size[group]
    chunks = np.array_split(np.arange(n), N_BINS)  # sizes differ by at most one
    positives = np.array([y_shared[idx].sum() for idx in chunks])
    cumulative = np.cumsum(positives)
    rows: list[dict[str, Any]] = []
    for decile, (idx, pos, cum) in enumerate(zip(chunks, positives, cumulative), start=1):
        rate = float(pos / len(idx)) if len(idx) else None
        rows.append(
            {
                "decile": decile,
                "rows": int(len(idx)),
                "share": len(idx) / n,
                "positives": float(pos),
                "rate": rate,
                "lift": rate / base_rate if rate is not None and base_rate > 0 else None,
                # cum / total, with total = cumulative[-1] so the last row is exactly 1.0
                "cumulative_capture": float(cum / cumulative[-1]) if cumulative[-1] else None,
                "min_score": float(p_desc[idx].min()) if len(idx) else None,
                "max_score": float(p_desc[idx].max()) if len(idx) else None,
            }
        )
    return rows


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    bin_of = np.searchsorted(edges[1:-1], p)  # as sklearn.calibration.calibration_curve
    count = np.bincount(bin_of, minlength=N_BINS)
    sum_p = np.bincount(bin_of, weights=p, minlength=N_BINS)
    sum_y = np.bincount(bin_of, weights=y, minlength=N_BINS)
    bins: list[dict[str, Any]] = []
    ece = 0.0
    for i in range(N_BINS):
        mean_p = observed = None
        if count[i]:
            mean_p, observed = float(sum_p[i] / count[i]), float(sum_y[i] / count[i])
            ece += count[i] / len(y) * abs(observed - mean_p)
        bins.append(
            {
                "lower": float(edges[i]),
                "upper": float(edges[i + 1]),
                "count": int(count[i]),
                "mean_predicted": mean_p,
                "observed_rate": observed,
            }
        )
    return {"binning": "uniform", "bins": bins, "ece": float(ece)}


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to numbers/lists, NaN/inf to None, datetimes
    to ISO 8601, anything else to its ``repr`` (the report and the registry's manifests)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
