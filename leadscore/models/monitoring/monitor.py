"""Windows of live scored vectors, a live baseline per model, and the detector on top.

Pure numpy; the drift agent (``leadscore.streams.drift``) feeds it the records of
``leads.features.v1`` and publishes what it returns.

The choices, measured (docs/drift.md):

- **A window counts each lead once** (its latest vector in the window). Consecutive
  scored vectors are strongly dependent: one lead's session rescored ten times gives ten
  near-identical rows, and the KS test assumes independent rows. Deduplicating by lead
  makes the rows (close to) independent draws of the lead population.
- **A window can be held open for a minimum event-time span** (``min_span_s``), so
  that it covers a whole weekly cycle where ``size`` leads come in less than a week;
  while it waits, a bounded bottom-k sample of its leads is kept (:class:`WindowBuffer`).
- **The reference is live traffic, not the training set.** The vectors a model is
  trained on (snapshots, or vectors just before an outcome) are not the vectors the
  stream scores; against a training sample every live window "drifted" (all 100
  windows of a calm simulated run alerted). The reference of a model version is its
  first ``baseline_windows`` windows of live traffic after it starts scoring: drift
  then means "the traffic changed since this model went live".
"""

from __future__ import annotations

import hashlib
import heapq
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from leadscore.models.monitoring.drift import DriftConfig, DriftDetector, DriftReference
from leadscore.models.monitoring.report import DriftReport

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
    """Tumbling windows of distinct leads; a lead's latest vector replaces its earlier ones.

    A window closes at the first row that leaves it with at least ``size`` distinct leads
    **and** an event-time span (latest minus earliest event time of the rows added) of at
    least ``min_span_s`` seconds. The span keeps a window from being shorter than a cycle
    of the traffic: with windows shorter than a week, weekend windows differ from the
    weekday windows around them and a calm run alerts (docs/drift.md). With
    ``min_span_s=0`` (the default) a window closes at exactly ``size`` leads.

    While a window waits for its span it keeps each lead's latest row, at most
    ``max_rows`` leads (default ``20 * size``). Beyond that it keeps a uniform sample of
    the window's distinct leads: the ``max_rows`` leads with the smallest hash of
    ``(window number, lead id)`` (a bottom-k reservoir). A lead is in or out of the sample
    whatever its number of rows, so busy leads are not favoured; the hash (blake2b) is
    not salted per process, so the sample depends only on the input, and the window number
    in the key draws a fresh sample for each window. Memory stays at ``max_rows`` rows.

    Args:
        size: distinct leads a window needs to close (also its row count when
            ``min_span_s`` is 0).
        min_span_s: event-time seconds a window must span to close.
        max_rows: leads kept while a window waits for its span (``None``: ``20 * size``);
            at least ``size``.
    """

    size: int
    min_span_s: float = 0.0
    max_rows: int | None = None
    _rows: dict[str, tuple[np.ndarray, float]] = field(init=False, default_factory=dict)
    # Max-heap (negated keys) of the kept leads' sample keys; only filled once the cap binds.
    _heap: list[tuple[int, str]] = field(init=False, default_factory=list)
    _start: float = field(init=False, default=float("inf"))
    _end: float = field(init=False, default=float("-inf"))
    _cap: int = field(init=False, default=0)  # max_rows resolved
    _windows: int = field(init=False, default=0)  # windows closed so far

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"WindowBuffer size must be at least 1, got {self.size}")
        if self.min_span_s < 0:
            raise ValueError(f"WindowBuffer min_span_s must be >= 0 seconds, got {self.min_span_s}")
        self._cap = 20 * self.size if self.max_rows is None else self.max_rows
        if self._cap < self.size:
            raise ValueError(
                f"WindowBuffer max_rows ({self.max_rows}) must be at least size ({self.size}); "
                "a window could never close"
            )

    def add(
        self, lead_id: str, vector: np.ndarray, probability: float, event_time: float
    ) -> ClosedWindow | None:
        """Add one row; return the closed window when this row closes it."""
        self._start = min(self._start, event_time)
        self._end = max(self._end, event_time)
        if lead_id in self._rows or len(self._rows) < self._cap:
            self._rows[lead_id] = (vector, probability)
        else:
            self._sample(lead_id, vector, probability)
        if len(self._rows) < self.size or self._end - self._start < self.min_span_s:
            return None
        rows = list(self._rows.values())
        window = ClosedWindow(
            X=np.stack([r[0] for r in rows]),
            scores=np.array([r[1] for r in rows], dtype=np.float64),
            start=self._start,
            end=self._end,
        )
        self._rows, self._heap = {}, []
        self._start, self._end = float("inf"), float("-inf")
        self._windows += 1
        return window

    def _sample(self, lead_id: str, vector: np.ndarray, probability: float) -> None:
        """A lead new to a full buffer: keep it in place of the largest key if its key is smaller."""
        if not self._heap:  # the cap binds for the first time in this window: key the kept leads
            self._heap = [(-self._key(kept), kept) for kept in self._rows]
            heapq.heapify(self._heap)
        key = self._key(lead_id)
        if key < -self._heap[0][0]:  # smaller than the largest kept key: it replaces that lead
            _, evicted = heapq.heapreplace(self._heap, (-key, lead_id))
            del self._rows[evicted]
            self._rows[lead_id] = (vector, probability)

    def _key(self, lead_id: str) -> int:
        digest = hashlib.blake2b(f"{self._windows}:{lead_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

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
                reason = (
                    f"baseline complete: {X.shape[0]} rows from {self.baseline_windows} windows"
                )
            else:
                reason = f"baseline window {len(self._baseline)} of {self.baseline_windows}"
            return DriftReport(index, window.X.shape[0], False, "none", reason=reason)
        report = self.detector_.update(window.X, window.scores)
        # Number the reports by this monitor's windows (baseline windows included).
        return DriftReport(
            index,
            report.n_rows,
            report.tested,
            report.level,
            report.features,
            report.score,
            report.reason,
        )

    # --- persistence ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state (baseline rows or reference sample, persistence history) as npz bytes."""
        # Any, not np.ndarray: mypy would match **arrays with savez's allow_pickle: bool.
        arrays: dict[str, Any] = {}
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
                hist[i, m - len(flags) :] = flags
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
                    monitor._baseline.append(
                        ClosedWindow(npz[f"b{i}_X"], npz[f"b{i}_s"], float(t[0]), float(t[1]))
                    )
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
    return datetime.fromtimestamp(t, UTC) if np.isfinite(t) else None
