"""Training rows from the stream's own scored vectors, labelled by what happened within a horizon.

The worker publishes every vector it scores (``leads.features.v1``) and every lead's first
outcome (``leads.training.v1``). A model is used to rank leads *all along their lives*, so
it should learn from vectors taken all along their lives, not only just before an outcome:
measured on simulated leads, a model trained on the just-before-outcome vectors ranked
mid-life leads at ROC-AUC 0.784, below the rules prior (0.793) and the snapshot-trained
model (0.826) — docs/drift.md.

Rows follow the rules of :mod:`leadscore.models.training.dataset` (the offline point-in-time set):

- a row is a lead's scored vector at event time ``t``, at most one per lead per
  ``every_s`` (the last of each period), and only before the lead's first outcome;
- ``y = 1`` if the lead converted within ``(t, t + horizon]``, else ``y = 0``;
- only rows whose horizon has passed by ``as_of`` (the newest event time seen): a row
  whose label may still change is dropped whatever its label, or recent rows would be
  mostly positives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["SnapshotSet", "snapshot_set"]


@dataclass(frozen=True, eq=False)
class SnapshotSet:
    """Rows in snapshot-time order: vectors, labels, leads, snapshot times (epoch s)."""

    X: np.ndarray
    y: np.ndarray
    leads: np.ndarray
    times: np.ndarray
    as_of: float
    horizon_s: float

    def __len__(self) -> int:
        return int(self.y.size)


def snapshot_set(
    samples: Iterable[tuple[str, float, list[float]]],
    outcomes: dict[str, tuple[float, int]],
    *,
    n_features: int,
    horizon_s: float = 30 * 86_400.0,
    every_s: float = 86_400.0,
    as_of: float | None = None,
) -> SnapshotSet:
    """Label the scored vectors ``(lead, event time, vector)`` with ``outcomes`` (lead -> (time, label)).

    Examples:
        >>> s = snapshot_set(
        ...     [("a", 0.0, [1.0]), ("a", 90_000.0, [2.0]), ("b", 0.0, [0.0])],
        ...     {"a": (100_000.0, 1)}, n_features=1, horizon_s=50_000.0, as_of=200_000.0,
        ... )
        >>> s.X[:, 0].tolist(), s.y.tolist(), s.leads.tolist()
        ([1.0, 0.0, 2.0], [0, 0, 1], ['a', 'b', 'a'])
    """
    last: dict[tuple[str, int], tuple[float, list[float]]] = {}
    newest = -np.inf
    for lead, t, vector in samples:
        newest = max(newest, t)
        outcome = outcomes.get(lead)
        if outcome is not None and t >= outcome[0]:
            continue  # at or after the label: never a row
        bucket = (lead, int(t // every_s))
        kept = last.get(bucket)
        if kept is None or t >= kept[0]:
            last[bucket] = (t, vector)
    if outcomes:
        newest = max(newest, max(t for t, _ in outcomes.values()))
    as_of = float(newest) if as_of is None else as_of
    rows: list[tuple[float, str, int, list[float]]] = []
    for (lead, _), (t, vector) in last.items():
        if t + horizon_s > as_of:
            # The horizon has not passed: dropping only the unknown negatives would inflate
            # the positive rate of recent rows, so every such row is dropped.
            continue
        outcome = outcomes.get(lead)
        converted = outcome is not None and outcome[0] <= t + horizon_s and outcome[1] == 1
        rows.append((t, lead, int(converted), vector))
    rows.sort(key=lambda r: (r[0], r[1]))
    X = np.array([r[3] for r in rows], dtype=np.float64).reshape(-1, n_features)
    return SnapshotSet(
        X=X,
        y=np.array([r[2] for r in rows], dtype=np.int64),
        leads=np.array([r[1] for r in rows], dtype=object),
        times=np.array([r[0] for r in rows], dtype=np.float64),
        as_of=as_of,
        horizon_s=horizon_s,
    )
