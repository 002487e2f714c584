"""How well a model does on labelled outcomes: metrics, and a sliding window that alerts on a drop.

Pure numpy/scikit-learn. The drift agent feeds it the examples of ``leads.training.v1``
(each carries the champion's probability for the lead's vector just before the outcome);
the retraining gate uses :func:`binary_metrics` to compare a candidate with the champion.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["PerformanceWindow", "binary_metrics"]

#: Fewest examples of each class for a ROC-AUC worth reporting.
MIN_PER_CLASS = 10


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (at ``threshold``), ROC-AUC, Brier and log loss.

    ROC-AUC is ``None`` when either class has fewer than :data:`MIN_PER_CLASS` rows.

    Examples:
        >>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
        >>> m["accuracy"], m["precision"], m["recall"], round(m["brier"], 4)
        (0.75, 0.6667, 1.0, 0.1175)
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    n, positives = int(y.size), int(y.sum())
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    enough = min(positives, n - positives) >= MIN_PER_CLASS
    eps = 1e-12
    return {
        "n": n,
        "positives": positives,
        "positive_rate": round(positives / n, 4) if n else 0.0,
        "accuracy": round(float(np.mean(predicted == (y == 1))), 4) if n else 0.0,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if enough else None,
        "brier": round(float(np.mean((p - y) ** 2)), 4) if n else 0.0,
        "log_loss": (
            round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 4)
            if n
            else 0.0
        ),
        "threshold": threshold,
    }


@dataclass
class PerformanceWindow:
    """The last ``size`` labelled outcomes of one model, and an alert when ROC-AUC drops.

    The first time the window is full its metrics become the *baseline*; later, a
    ROC-AUC below the baseline by ``auc_drop`` is a medium alert, by twice that a high one.
    Metrics are recomputed on demand (a few ms for 500 rows).

    Examples:
        >>> w = PerformanceWindow(size=40, auc_drop=0.05)
        >>> rng = np.random.default_rng(0)
        >>> for y in rng.integers(0, 2, 40):
        ...     w.add(float(y) * 0.6 + 0.2, int(y))
        >>> w.metrics()["roc_auc"], w.level()
        (1.0, 'none')
    """

    size: int = 500
    auc_drop: float = 0.05
    _rows: deque[tuple[float, int]] = field(init=False)
    baseline_: dict[str, Any] | None = field(init=False, default=None)
    seen_: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rows = deque(maxlen=self.size)

    def add(self, probability: float, label: int) -> None:
        self._rows.append((float(probability), int(label)))
        self.seen_ += 1
        if self.baseline_ is None and len(self._rows) == self.size:
            metrics = self.metrics()
            if metrics["roc_auc"] is not None:
                self.baseline_ = metrics

    def metrics(self) -> dict[str, Any]:
        if not self._rows:
            return binary_metrics(np.zeros(0), np.zeros(0))
        p, y = np.array(self._rows).T
        return binary_metrics(y, p)

    def level(self) -> str:
        """``none``, ``medium`` or ``high`` from the ROC-AUC drop (``none`` until both are known)."""
        if self.baseline_ is None or len(self._rows) < self.size:
            return "none"
        auc = self.metrics()["roc_auc"]
        if auc is None:
            return "none"
        drop = self.baseline_["roc_auc"] - auc
        if drop >= 2 * self.auc_drop:
            return "high"
        if drop >= self.auc_drop:
            return "medium"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        """The whole state (rows, baseline, count), JSON-ready, for :meth:`from_dict`."""
        return {"rows": list(self._rows), "baseline": self.baseline_, "seen": self.seen_}

    @classmethod
    def from_dict(cls, data: dict[str, Any], size: int, auc_drop: float) -> PerformanceWindow:
        """Rebuild a window saved by :meth:`to_dict` (with the current size and threshold)."""
        window = cls(size, auc_drop)
        window._rows.extend((float(p), int(y)) for p, y in data.get("rows", []))
        window.baseline_ = data.get("baseline")
        window.seen_ = int(data.get("seen", len(window._rows)))
        return window

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the window's metrics, the baseline's, the alert level."""
        return {
            "window": self.metrics(),
            "baseline": self.baseline_,
            "level": self.level(),
            "labels_seen": self.seen_,
            "auc_drop_threshold": self.auc_drop,
        }
