"""The rows a training run learns from, and how they are split: outer folds, inner held-out parts.

The cross-validation is stratified (lead-grouped when rows carry lead ids), or
time-ordered with an expanding window when rows have times: then a fold trains only on
rows whose label was known before its test period (``t + horizon <= cut``). Inside each
fold's training rows, :func:`inner_split` holds out a part (the latest 20 % when rows have
times, else a stratified, lead-grouped 20 %) for the search, the blend weights and the
calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

__all__ = ["InsufficientDataError", "TrainingData", "both_classes", "inner_split", "outer_folds"]

_HOLDOUT_SHARE = 0.2


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


def outer_folds(
    data: TrainingData, folds: int, seed: int
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The cross-validation scheme's name and its ``(train, test)`` row indices per fold."""
    y = np.asarray(data.y, dtype=np.int64)
    if data.times is not None:
        order = np.argsort(data.times, kind="stable")
        blocks = np.array_split(order, folds + 1)
        out = []
        for i in range(1, folds + 1):
            test = np.sort(blocks[i])
            cut = data.times[test].min()
            train = np.flatnonzero(data.times + data.horizon_s < cut)
            if both_classes(y, train) and both_classes(y, test) and len(train) >= 50:
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


def inner_split(data: TrainingData, idx: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The inner training part and the held-out part of ``idx``."""
    y = np.asarray(data.y)[idx]
    if data.times is not None:
        t = data.times[idx]
        cut = np.quantile(t, 1.0 - _HOLDOUT_SHARE)
        inner = idx[t + data.horizon_s <= cut]
        holdout = idx[t > cut]
        if both_classes(data.y, inner) and both_classes(data.y, holdout):
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


def both_classes(y: np.ndarray, idx: np.ndarray) -> bool:
    """Whether the rows ``idx`` hold both labels."""
    return len(idx) > 0 and len(np.unique(np.asarray(y)[idx])) == 2
