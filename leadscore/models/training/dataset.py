"""Point-in-time training sets: feature snapshots replayed from an event log, labelled by outcome.

Each example is one lead at one moment ``t`` (the time of one of its activity events):

- ``X`` is the feature vector the stream would have computed from the lead's events with
  ``time <= t`` (replayed in event-time order through :func:`apply_event`). Nothing after
  ``t`` is used.
- ``y`` is 1 if the lead has a ``lead.converted`` event in ``(t, t + horizon]``, else 0.

Two rules keep the labels honest:

- no snapshot at or after a lead's first outcome (converted or disqualified): by then the
  answer is known and the lead is no longer scored;
- no snapshot whose horizon reaches past the end of the log (``as_of``): its label would
  still be unknown. Dropping only the unknown negatives would inflate the positive rate
  of recent snapshots, so every such snapshot is dropped, whatever its label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any

import numpy as np
from pydantic import ValidationError

from leadscore.models.features.state import DAY_S, LeadState, apply_event
from leadscore.models.features.vector import FEATURE_NAMES, N_FEATURES, to_vector
from leadscore.models.privacy.minimise import DEFAULT_KEEP, minimised
from leadscore.schemas.events import ACTIVITY_TYPES, OUTCOME_TYPES, lead_event_adapter

__all__ = ["TrainingSet", "build_training_set"]


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """Examples for training, one row per (lead, snapshot time).

    Attributes:
        X: feature vectors, shape (n, N_FEATURES), in the order of ``feature_names``.
        y: labels, shape (n,), 1 = converted within the horizon after the snapshot.
        lead_ids: the lead of each row, shape (n,) (rows of one lead must stay in one CV fold).
        snapshot_times: event time of each snapshot, UTC epoch seconds, shape (n,).
        horizon_days: the label horizon.
        as_of: end of the observed log, UTC epoch seconds (every horizon ends by then).
        feature_names: names of the columns of ``X``.
        n_events: events read (after dropping repeated ids).
        n_invalid: records skipped because they failed validation (only with ``skip_invalid``).
    """

    X: np.ndarray
    y: np.ndarray
    lead_ids: np.ndarray
    snapshot_times: np.ndarray
    horizon_days: float = 30.0
    as_of: float | None = None
    feature_names: tuple[str, ...] = field(default=FEATURE_NAMES)
    n_events: int = 0
    n_invalid: int = 0

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def class_balance(self) -> dict[str, float]:
        """Counts of each class and the positive rate."""
        positives = int(self.y.sum())
        return {
            "negative": float(len(self) - positives),
            "positive": float(positives),
            "positive_rate": positives / len(self) if len(self) else 0.0,
        }

    @property
    def training_window(self) -> tuple[datetime, datetime] | None:
        """(earliest snapshot, end of the observed log) as UTC datetimes; None when empty."""
        if len(self) == 0:
            return None
        end = self.as_of if self.as_of is not None else float(self.snapshot_times.max())
        return (_utc(float(self.snapshot_times.min())), _utc(end))

    def reference_sample(self, n: int = 500, *, seed: int = 0) -> np.ndarray:
        """Up to ``n`` rows of ``X`` chosen at random: the drift reference saved with a model."""
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(self), size=min(n, len(self)), replace=False)
        return self.X[np.sort(rows)]


def build_training_set(
    events: Iterable[Any],
    *,
    horizon_days: float = 30.0,
    snapshots_per_lead: int | None = 3,
    seed: int = 0,
    as_of: datetime | None = None,
    skip_invalid: bool = False,
    url_keep_params: Sequence[str] = DEFAULT_KEEP,
) -> TrainingSet:
    """Replay an event log into point-in-time feature snapshots with conversion labels.

    Works on any log of lead events, in any order, with repeats: events are grouped by
    lead (``subject``), repeated ids are dropped (first seen wins), and each lead is
    replayed in event-time order.

    Args:
        events: validated events from :mod:`leadscore.schemas.events` or plain dicts
            (CloudEvents JSON objects), which are validated here.
        horizon_days: a snapshot is positive if the lead converts within this many days.
        snapshots_per_lead: how many snapshot times to draw per lead, at random without
            replacement among the eligible activity times; ``None`` takes them all.
        seed: seeds the draw. Each lead's draw depends only on the seed and its own
            events, so adding leads to the log does not change the other leads' rows.
        as_of: end of the observed log (timezone-aware); defaults to the latest event time.
        skip_invalid: count and skip dicts that fail validation instead of raising.
        url_keep_params: the query parameters the worker keeps in URLs
            (``LEADSCORE_URL_KEEP_PARAMS``): each event is cleaned as the worker cleans it
            (:func:`~leadscore.models.privacy.minimise.minimised`), so the snapshots are the
            vectors the stream would build.

    Returns:
        The :class:`TrainingSet`, rows ordered by lead id, then snapshot time.

    Raises:
        ValueError: a record failed validation (its position and the reason are given),
            or an argument is out of range.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days!r}")
    if snapshots_per_lead is not None and snapshots_per_lead < 1:
        raise ValueError(f"snapshots_per_lead must be >= 1 or None, got {snapshots_per_lead!r}")
    if as_of is not None and as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC), got a naive datetime")

    by_lead, n_events, n_invalid, latest_t = _group_by_lead(
        events, skip_invalid=skip_invalid, keep=tuple(url_keep_params)
    )
    end_t = as_of.timestamp() if as_of is not None else latest_t
    horizon_s = horizon_days * DAY_S

    rows: list[np.ndarray] = []
    labels: list[int] = []
    lead_of_row: list[str] = []
    times: list[float] = []
    for lead_id in sorted(by_lead):
        lead_events = sorted(
            by_lead[lead_id], key=lambda item: item[0]
        )  # stable: log order on ties
        snapshots = _choose_snapshots(
            lead_id, lead_events, end_t, horizon_s, snapshots_per_lead, seed
        )
        if not snapshots:
            continue
        conversions = np.array([t for t, e in lead_events if e.type == "lead.converted"])
        state = LeadState(lead_id=lead_id)
        i = 0
        for snap_t in snapshots:
            # Apply every event at or before the snapshot; outcome events are all later.
            while i < len(lead_events) and lead_events[i][0] <= snap_t:
                apply_event(state, lead_events[i][1], dedupe_window=1)  # repeats already dropped
                i += 1
            rows.append(to_vector(state))
            labels.append(int(((conversions > snap_t) & (conversions <= snap_t + horizon_s)).any()))
            lead_of_row.append(lead_id)
            times.append(snap_t)

    return TrainingSet(
        X=np.vstack(rows) if rows else np.zeros((0, N_FEATURES)),
        y=np.asarray(labels, dtype=np.int64),
        lead_ids=np.asarray(lead_of_row, dtype=object),
        snapshot_times=np.asarray(times, dtype=np.float64),
        horizon_days=float(horizon_days),
        as_of=end_t if by_lead else None,
        n_events=n_events,
        n_invalid=n_invalid,
    )


def _group_by_lead(
    events: Iterable[Any], *, skip_invalid: bool, keep: tuple[str, ...]
) -> tuple[dict[str, list[tuple[float, Any]]], int, int, float]:
    """Validate, clean, drop repeated ids per lead, group as lead -> [(event time, event)]."""
    by_lead: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    seen: dict[str, set[str]] = defaultdict(set)
    n_events = n_invalid = 0
    latest_t = -np.inf
    for position, record in enumerate(events):
        if isinstance(record, Mapping):
            try:
                record = lead_event_adapter.validate_python(record)
            except ValidationError as exc:
                if skip_invalid:
                    n_invalid += 1
                    continue
                raise ValueError(
                    f"event #{position} (id={record.get('id')!r}) is not a valid lead event: "
                    f"{exc.errors(include_url=False)[0]['msg']} at "
                    f"{'.'.join(str(p) for p in exc.errors(include_url=False)[0]['loc'])}; "
                    "pass skip_invalid=True to count and skip such records"
                ) from exc
        record = minimised(record, keep)
        lead_id = record.subject
        if record.id in seen[lead_id]:
            continue
        seen[lead_id].add(record.id)
        t = record.time.timestamp()
        latest_t = max(latest_t, t)
        by_lead[lead_id].append((t, record))
        n_events += 1
    return by_lead, n_events, n_invalid, float(latest_t)


def _choose_snapshots(
    lead_id: str,
    lead_events: list[tuple[float, Any]],
    end_t: float,
    horizon_s: float,
    k: int | None,
    seed: int,
) -> list[float]:
    """Sorted snapshot times: distinct activity times before the first outcome whose
    whole horizon is observed; ``k`` of them drawn at random (all if ``k`` is None)."""
    outcome_t = min((t for t, e in lead_events if e.type in OUTCOME_TYPES), default=np.inf)
    eligible = sorted(
        {
            t
            for t, e in lead_events
            if e.type in ACTIVITY_TYPES and t < outcome_t and t + horizon_s <= end_t
        }
    )
    if k is None or len(eligible) <= k:
        return eligible
    # One generator per lead, from the seed and the lead id: a lead's draw does not depend
    # on which other leads are in the log or in what order they come.
    lead_key = int.from_bytes(blake2b(lead_id.encode(), digest_size=8).digest(), "little")
    rng = np.random.default_rng([seed, lead_key])
    picked = rng.choice(len(eligible), size=k, replace=False)
    return [eligible[j] for j in sorted(picked)]


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)
