"""Windows of live scored vectors, a live baseline per model, and the detector on top.

Pure numpy; the drift agent (``leadscore.streams.drift_agent``) feeds it the records of
``leads.features.v1`` and publishes what it returns.

Two choices, both measured (docs/drift.md):

- **A window counts each lead once** (its latest vector in the window). Consecutive
  scored vectors are strongly dependent: one lead's session rescored ten times gives ten
  near-identical rows, and the KS test assumes independent rows. Deduplicating by lead
  makes the rows (close to) independent draws of the lead population.
- **The reference is live traffic, not the training set.** The vectors a model is
  trained on (snapshots, or vectors just before an outcome) are not the vectors the
  stream scores; against a training sample every live window "drifted" (all 100
  windows of a calm simulated run alerted). The reference of a model version is its
  first ``baseline_windows`` windows of live traffic after it starts scoring: drift
  then means "the traffic changed since this model went live".
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from leadscore.models.drift import DriftConfig, DriftDetector, DriftReference, DriftReport

__all__ = ["ClosedWindow", "DriftMonitor", "WindowBuffer"]


@dataclass(frozen=True)
class ClosedWindow:
    """A full window: one row per lead, with the probability each row was scored at."""

    X: np.ndarray
    scores: np.ndarray
    start: float  # earliest event time in the window (epoch seconds)
    end: float  # latest


@dataclass
class WindowBuffer:
    """Tumbling windows of ``size`` distinct leads; a lead's latest vector replaces its earlier ones."""

    size: int
    _rows: dict[str, tuple[np.ndarray, float]] = field(init=False, default_factory=dict)
    _start: float = field(init=False, default=float("inf"))
    _end: float = field(init=False, default=float("-inf"))

    def add(self, lead_id: str, vector: np.ndarray, probability: float, event_time: float) -> ClosedWindow | None:
        """Add one row; return the closed window when this row fills it."""
        self._rows[lead_id] = (vector, probability)
        self._start = min(self._start, event_time)
        self._end = max(self._end, event_time)
        if len(self._rows) < self.size:
            return None
        rows = list(self._rows.values())
        window = ClosedWindow(
            X=np.stack([r[0] for r in rows]),
            scores=np.array([r[1] for r in rows], dtype=np.float64),
            start=self._start,
            end=self._end,
        )
        self._rows = {}
        self._start, self._end = float("inf"), float("-inf")
        return window

    def __len__(self) -> int:
        return len(self._rows)


@dataclass
class DriftMonitor:
    """The drift state of one model version: its baseline, then a detector against it.

    :meth:`test` takes closed windows in order. The first ``baseline_windows`` build the
    reference (their reports have ``tested=False``); every later one is tested by a
    :class:`DriftDetector` (persistence state kept across windows). :meth:`to_bytes` /
    :meth:`from_bytes` carry the whole state across a restart.
    """

    version: str
    feature_names: tuple[str, ...]
    config: DriftConfig = field(default_factory=DriftConfig)
    baseline_windows: int = 3
    _baseline: list[ClosedWindow] = field(init=False, default_factory=list)
    detector_: DriftDetector | None = field(init=False, default=None)
    windows_seen_: int = field(init=False, default=0)

    @property
    def baseline_ready(self) -> bool:
        return self.detector_ is not None

    def test(self, window: ClosedWindow) -> DriftReport:
        """Take the next window: add it to the baseline, or test it against the baseline."""
        index = self.windows_seen_
        self.windows_seen_ += 1
        if self.detector_ is None:
            self._baseline.append(window)
            if len(self._baseline) >= self.baseline_windows:
                X = np.concatenate([w.X for w in self._baseline])
                scores = np.concatenate([w.scores for w in self._baseline])
                reference = DriftReference.from_sample(X, self.feature_names, scores)
                self.detector_ = DriftDetector(reference, self.config)
                self._baseline = []
                reason = f"baseline complete: {X.shape[0]} rows from {self.baseline_windows} windows"
            else:
                reason = f"baseline window {len(self._baseline)} of {self.baseline_windows}"
            return DriftReport(index, window.X.shape[0], False, "none", reason=reason)
        report = self.detector_.update(window.X, window.scores)
        # Number the reports by this monitor's windows (baseline windows included).
        return DriftReport(
            index, report.n_rows, report.tested, report.level, report.features, report.score, report.reason
        )

    # --- persistence ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state (baseline rows or reference sample, persistence history) as npz bytes."""
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"windows_seen": self.windows_seen_, "version": self.version}
        if self.detector_ is None:
            for i, w in enumerate(self._baseline):
                arrays[f"b{i}_X"], arrays[f"b{i}_s"] = w.X, w.scores
                arrays[f"b{i}_t"] = np.array([w.start, w.end])
            meta["baseline_parts"] = len(self._baseline)
        else:
            ref = self.detector_.reference
            arrays["ref_X"] = _reference_matrix(ref)
            if ref.sorted_scores is not None:
                arrays["ref_s"] = ref.sorted_scores[:, 0]
            names = list(self.detector_.history_)
            arrays["hist_names"] = np.array(names, dtype=str)
            m = self.config.persistence_m
            hist = np.full((len(names), m), -1, dtype=np.int8)
            for i, name in enumerate(names):
                flags = list(self.detector_.history_[name])
                hist[i, m - len(flags):] = flags
            arrays["hist"] = hist
            meta["detector_windows"] = self.detector_.n_windows_
        arrays["meta"] = np.array([repr(meta)])
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, feature_names: tuple[str, ...], config: DriftConfig, baseline_windows: int
    ) -> DriftMonitor:
        """Rebuild a monitor saved by :meth:`to_bytes` (``allow_pickle=False``: no code runs)."""
        from ast import literal_eval
        from collections import deque

        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = literal_eval(str(npz["meta"][0]))
            monitor = cls(str(meta["version"]), feature_names, config, baseline_windows)
            monitor.windows_seen_ = int(meta["windows_seen"])
            if "ref_X" in npz:
                scores = npz["ref_s"] if "ref_s" in npz else None
                reference = DriftReference.from_sample(npz["ref_X"], feature_names, scores)
                detector = DriftDetector(reference, config)
                for name, flags in zip(npz["hist_names"], npz["hist"]):
                    detector.history_[str(name)] = deque(
                        (bool(f) for f in flags if f >= 0), maxlen=config.persistence_m
                    )
                detector.n_windows_ = int(meta.get("detector_windows", 0))
                monitor.detector_ = detector
            else:
                for i in range(int(meta.get("baseline_parts", 0))):
                    t = npz[f"b{i}_t"]
                    monitor._baseline.append(ClosedWindow(npz[f"b{i}_X"], npz[f"b{i}_s"], float(t[0]), float(t[1])))
        return monitor


def _reference_matrix(ref: DriftReference) -> np.ndarray:
    """Rebuild a (rows, features) matrix with the reference's per-column distributions.

    Numeric columns come back sorted and categorical ones as their category counts laid
    out in order: rows are not the original rows, but every per-column test only looks
    at one column's distribution, so the rebuilt reference tests identically.
    """
    x = np.empty((ref.n_rows, len(ref.feature_names)), dtype=np.float64)
    for j, col in enumerate(ref.numeric_index):
        x[:, col] = ref.sorted_numeric[:, j]
    for col, cats, counts in zip(ref.categorical_index, ref.categories, ref.category_counts):
        x[:, col] = np.repeat(cats, counts)
    return x


def utc(t: float) -> datetime | None:
    """Epoch seconds as an aware datetime (``None`` for an empty window's infinities)."""
    return datetime.fromtimestamp(t, timezone.utc) if np.isfinite(t) else None
