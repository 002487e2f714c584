"""The model evaluation report: metrics of scored predictions, and their rendering.

``leadscore train`` cross-validates several candidate models on the same folds, then prints
this report, saves it with the model and writes it as JSON (``--report PATH``). This module
computes the metrics (:func:`evaluate`, :func:`fold_summary`, :func:`choose_threshold`) and
renders or writes the report (:func:`render`, :func:`write_json`); the trainer builds the
dict. Every value here is JSON-ready: plain floats, ints, strings and lists, NaN as ``None``.

The report dict (the contract between the trainer, :func:`render` and the JSON file)::

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
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
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
    "render",
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
    text = json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render(report: Mapping[str, Any], console: Console) -> None:
    """Print ``report`` for a terminal of 100 columns or more.

    Prints the data summary, the models side by side (cross-validated mean and, dimmed,
    std; the best value of each column in bold), the chosen model and why, then for the
    chosen model its time-ordered check, lift by decile, calibration, confusion matrix,
    top feature importances, and the warnings.

    Raises:
        ReportError: ``report`` breaks the contract (see :func:`check_report`).
    """
    check_report(report)
    _render_data(report, console)
    chosen = report["chosen"]
    _render_models(report["models"], chosen["name"], console)
    console.print(
        f"[bold]chosen:[/] {escape(chosen['name'])} at threshold "
        f"{_fmt(chosen.get('threshold'))}: {escape(str(chosen.get('reason', '')))}"
    )
    model = next(m for m in report["models"] if m["name"] == chosen["name"])
    _render_time_split(model.get("time_split"), console)
    oof = model.get("oof")
    if oof:
        _render_oof(oof, console)
    _render_importance(report.get("feature_importance") or [], console)
    for warning in report.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/] {escape(str(warning))}")


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


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to numbers and lists, NaN and inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# --- rendering helpers -------------------------------------------------------------------

# column header, metric key, higher is better
_MODEL_COLUMNS = (
    ("accuracy", "accuracy", True),
    ("majority\naccuracy", "majority_accuracy", None),
    ("ROC-AUC", "roc_auc", True),
    ("PR-AUC", "pr_auc", True),
    ("Brier", "brier", False),
    ("log-loss", "log_loss", False),
    ("F1", "f1", True),
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _render_data(report: Mapping[str, Any], console: Console) -> None:
    data = report["data"]
    cv = data.get("cv") or {}
    console.print(f"[bold]data:[/] {escape(str(data.get('source', '?')))}")
    console.print(
        f"  {data.get('rows', '?')} rows, {data.get('positives', '?')} positive "
        f"({_fmt(data.get('positive_rate'))}), {data.get('features', '?')} features; "
        f"cross-validation {escape(str(cv.get('scheme', '?')))}, {cv.get('folds', '?')} folds"
    )
    for column in report.get("columns") or []:
        rest = dict(column)
        name = next((rest.pop(k) for k in ("column", "name", "feature") if k in rest), "?")
        text = f"{name}: " + "; ".join(f"{k}={v}" for k, v in rest.items())
        console.print(f"  [dim]column[/] {escape(text)}", overflow="ellipsis", no_wrap=True)


def _render_models(models: Sequence[Mapping[str, Any]], chosen: str, console: Console) -> None:
    table = Table(
        title="models compared (cross-validation: mean, std below)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("model", overflow="fold", min_width=16)
    for header, _, _ in _MODEL_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("fit s", justify="right")
    best: dict[str, float] = {}
    for _, key, higher in _MODEL_COLUMNS:
        values = [m["cv"].get(key) for m in models]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if higher is not None and len(finite) > 1:
            best[key] = max(finite) if higher else min(finite)
    for model in models:
        cv, std = model["cv"], model["cv"].get("std") or {}
        cells = [("[bold]*" if model["name"] == chosen else "") + escape(model["name"])]
        for _, key, _ in _MODEL_COLUMNS:
            mean = _fmt(cv.get(key))
            if key in best and cv.get(key) == best[key]:
                mean = f"[bold]{mean}[/]"
            cells.append(f"{mean}\n[dim]±{_fmt(std.get(key))}[/]")
        cells.append(_fmt(model.get("fit_seconds"), 1))
        table.add_row(*cells)
    console.print(table)
    legend = Table.grid(padding=(0, 1))
    legend.add_column(style="dim", overflow="fold")  # as wide as the longest name allows
    legend.add_column(style="dim")
    for model in models:
        if model.get("description"):
            legend.add_row(f"  {escape(model['name'])}:", escape(str(model["description"])))
    legend.add_row("  *", "chosen; bold: best in column (majority accuracy is the baseline)")
    console.print(legend)


def _render_time_split(time_split: Mapping[str, Any] | None, console: Console) -> None:
    if not time_split:
        console.print("time-ordered check: not run")
        return
    skipped = len(time_split.get("skipped") or [])
    head = (
        f"time-ordered check ({escape(str(time_split.get('scheme', '?')))}, "
        f"{time_split.get('folds', '?')} folds scored, {skipped} skipped)"
    )
    if "roc_auc" not in time_split:
        console.print(f"{head}: no fold could be scored")
        return
    console.print(
        f"{head}: ROC-AUC {_fmt(time_split.get('roc_auc'))}, "
        f"PR-AUC {_fmt(time_split.get('pr_auc'))}, Brier {_fmt(time_split.get('brier'))}, "
        f"accuracy {_fmt(time_split.get('accuracy'))} vs majority "
        f"{_fmt(time_split.get('majority_accuracy'))}"
    )


def _render_oof(oof: Mapping[str, Any], console: Console) -> None:
    lift = Table(title="lift by decile (out-of-fold)", box=box.SIMPLE_HEAD, padding=(0, 1))
    for header in ("decile", "rows", "pos", "rate", "lift", "capture"):
        lift.add_column(header, justify="right")
    for row in oof.get("lift_by_decile") or []:
        pos = row["positives"]
        lift.add_row(
            str(row["decile"]),
            str(row["rows"]),
            f"{pos:.0f}" if float(pos).is_integer() else f"{pos:.1f}",
            _fmt(row["rate"]),
            _fmt(row["lift"], 2),
            _fmt(row["cumulative_capture"], 2),
        )
    calibration = oof.get("calibration") or {}
    cal = Table(
        title=f"calibration (equal-width bins), ECE {_fmt(calibration.get('ece'))}",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for header in ("bin", "rows", "predicted", "observed"):
        cal.add_column(header, justify="right")
    for b in calibration.get("bins") or []:
        cal.add_row(
            f"{b['lower']:.1f}-{b['upper']:.1f}",
            str(b["count"]),
            _fmt(b["mean_predicted"]),
            _fmt(b["observed_rate"]),
        )
    side_by_side = Table.grid(padding=(0, 4))
    side_by_side.add_row(lift, cal)
    console.print(side_by_side)

    c = oof.get("confusion") or {}
    console.print(f"confusion at threshold {_fmt(oof.get('threshold'))} (out-of-fold):")
    confusion = Table(box=box.SIMPLE_HEAD, padding=(0, 1))
    confusion.add_column("")
    confusion.add_column("predicted 1", justify="right")
    confusion.add_column("predicted 0", justify="right")
    confusion.add_row("actual 1", str(c.get("tp", "?")), str(c.get("fn", "?")))
    confusion.add_row("actual 0", str(c.get("fp", "?")), str(c.get("tn", "?")))
    console.print(confusion)
    console.print(
        f"  precision {_fmt(oof.get('precision'))}, recall {_fmt(oof.get('recall'))}, "
        f"F1 {_fmt(oof.get('f1'))}, accuracy {_fmt(oof.get('accuracy'))} vs majority "
        f"{_fmt(oof.get('majority_accuracy'))}"
    )


def _render_importance(
    importance: Sequence[Mapping[str, Any]], console: Console, top: int = 10
) -> None:
    if not importance:
        return
    rows = sorted(importance, key=lambda r: -abs(r["importance"] or 0.0))[:top]
    scale = max(abs(r["importance"] or 0.0) for r in rows) or 1.0
    table = Table(
        title=f"top {len(rows)} of {len(importance)} feature importances",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("feature", overflow="fold", max_width=40)
    table.add_column("importance", justify="right")
    table.add_column("", no_wrap=True)
    for row in rows:
        value = row["importance"] or 0.0
        bar = "█" * round(30 * abs(value) / scale)
        table.add_row(escape(str(row["feature"])), _fmt(value, 4), bar)
    console.print(table)
