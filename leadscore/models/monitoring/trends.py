"""Score trends over event time: per-batch aggregation into buckets, and merging them for display.

The worker adds one batch's numbers to a Redis hash per time bucket (``P trends:<start>``);
the API merges the stored buckets into hours, days or weeks. The fields of a bucket:

- ``scores``: published score events whose ``event_time`` falls in the bucket
- ``bin:<i>``: of those, with ``score // 10 == i`` (``i`` in 0..9; 100 counts in 9)
- ``grade:<G>``: of those, with grade ``G``
- ``with_components``: of those, with ``components``; ``fit``, ``engagement`` and
  ``fam:<family>`` are the sums of their points (means = sum / ``with_components``)
- ``out:<G>:n``, ``out:<G>:conv``: first outcomes at that time of leads graded ``G`` when
  the outcome arrived, and how many of them converted
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from leadscore.schemas.learning import TrainingExample
from leadscore.schemas.scores import LeadScored

GRADES = ("A", "B", "C", "D")

#: Named bucket sizes the API offers, in seconds.
BUCKET_SIZES_S = {"hour": 3600, "day": 86_400, "week": 604_800}

#: 1970-01-05T00:00Z, a Monday: weeks start there (epoch multiples of a week start on Thursdays).
WEEK_ORIGIN_S = 345_600


def bucket_start(t: datetime, bucket_s: int, origin_s: int = 0) -> int:
    """The epoch second at which ``t``'s bucket starts.

    Examples:
        >>> bucket_start(datetime(2026, 1, 1, 10, 30, tzinfo=UTC), 3600)
        1767261600
    """
    seconds = int(t.timestamp() // 1)
    return (seconds - origin_s) // bucket_s * bucket_s + origin_s


def aggregate(
    scores: Iterable[LeadScored],
    examples: Iterable[TrainingExample],
    *,
    grade_of: Callable[[float], str],
    bucket_s: int,
    skip_ids: frozenset[str] | set[str] = frozenset(),
) -> dict[int, dict[str, float]]:
    """One batch's additions to the trend buckets: bucket start -> field -> amount.

    Counts are ints and sums of points floats, so the writer knows which to HINCRBY.

    Args:
        scores: the batch's published score events (bucketed by ``event_time``).
        examples: the batch's training examples, one per lead's first outcome (bucketed by
            ``outcome_time``, graded by ``grade_of(example.probability)``).
        grade_of: probability -> grade, as the worker grades a score.
        bucket_s: the stored bucket size.
        skip_ids: score event ids not to count (re-publications of an earlier score).

    Examples:
        >>> aggregate([], [], grade_of=lambda p: "A", bucket_s=3600)
        {}
    """
    buckets: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(int))
    for event in scores:
        if event.id in skip_ids:
            continue
        row = buckets[bucket_start(event.event_time, bucket_s)]
        row["scores"] += 1
        row[f"bin:{min(event.score // 10, 9)}"] += 1
        row[f"grade:{event.grade}"] += 1
        if event.components is not None:
            row["with_components"] += 1
            row["fit"] += float(event.components.fit)
            row["engagement"] += float(event.components.engagement)
            for family, points in event.components.families.items():
                row[f"fam:{family}"] += float(points)
    for example in examples:
        row = buckets[bucket_start(example.outcome_time, bucket_s)]
        grade = grade_of(example.probability)
        row[f"out:{grade}:n"] += 1
        row[f"out:{grade}:conv"] += int(example.label)
    return {start: dict(row) for start, row in buckets.items()}


def _rate(converted: float, n: float) -> float | None:
    return round(converted / n, 6) if n else None


def _mean(total: float, n: float) -> float | None:
    return round(total / n, 4) if n else None


def merge(
    stored: Mapping[int, Mapping[str, float]],
    *,
    since_s: int,
    until_s: int,
    bucket_s: int,
    origin_s: int = 0,
) -> dict[str, Any]:
    """Stored buckets merged into ``bucket_s`` buckets over ``[since_s, until_s)``, for display.

    Every bucket of the range is listed, empty ones with zeros, oldest first. ``totals``
    gives each grade's outcomes over the whole range and its lift: the grade's
    conversion rate over the overall rate (``None`` when either is undefined or the
    overall rate is 0).

    Args:
        stored: stored bucket start -> its fields (see the module docstring).
        since_s, until_s: the range, epoch seconds; a stored bucket counts when its start is in it.
        bucket_s: the size to merge into (a multiple of the stored size).
        origin_s: where buckets are aligned (:data:`WEEK_ORIGIN_S` for weeks).
    """
    merged: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for start, fields in stored.items():
        if since_s <= start < until_s:
            row = merged[(start - origin_s) // bucket_s * bucket_s + origin_s]
            for name, value in fields.items():
                row[name] += value
    first = (since_s - origin_s) // bucket_s * bucket_s + origin_s
    buckets = []
    totals: dict[str, float] = defaultdict(float)
    for start in range(first, until_s, bucket_s):
        row = merged.get(start, {})
        with_components = row.get("with_components", 0.0)
        outcomes = {}
        for grade in GRADES:
            n, conv = row.get(f"out:{grade}:n", 0.0), row.get(f"out:{grade}:conv", 0.0)
            totals[f"{grade}:n"] += n
            totals[f"{grade}:conv"] += conv
            outcomes[grade] = {"n": int(n), "converted": int(conv), "rate": _rate(conv, n)}
        buckets.append(
            {
                "start": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
                "scores": int(row.get("scores", 0)),
                "bins": [int(row.get(f"bin:{i}", 0)) for i in range(10)],
                "grades": {grade: int(row.get(f"grade:{grade}", 0)) for grade in GRADES},
                "families": {
                    name.removeprefix("fam:"): _mean(value, with_components)
                    for name, value in sorted(row.items())
                    if name.startswith("fam:")
                },
                "fit": _mean(row.get("fit", 0.0), with_components),
                "engagement": _mean(row.get("engagement", 0.0), with_components),
                "outcomes": outcomes,
            }
        )
    n_all = sum(totals[f"{grade}:n"] for grade in GRADES)
    conv_all = sum(totals[f"{grade}:conv"] for grade in GRADES)
    return {
        "bucket_s": bucket_s,
        "buckets": buckets,
        "totals": {
            "scores": sum(bucket["scores"] for bucket in buckets),
            "outcomes": outcome_totals(totals),
            "overall": {
                "n": int(n_all),
                "converted": int(conv_all),
                "rate": _rate(conv_all, n_all),
            },
        },
    }


def outcome_totals(totals: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Per grade ``{n, converted, rate, lift}`` from ``"<G>:n"``/``"<G>:conv"`` sums.

    Examples:
        >>> t = outcome_totals({"A:n": 10, "A:conv": 5, "D:n": 10, "D:conv": 0})
        >>> t["A"]["lift"], t["D"]["lift"], t["B"]["lift"]
        (2.0, 0.0, None)
    """
    n_all = sum(totals.get(f"{grade}:n", 0.0) for grade in GRADES)
    conv_all = sum(totals.get(f"{grade}:conv", 0.0) for grade in GRADES)
    out: dict[str, dict[str, Any]] = {}
    for grade in GRADES:
        n, conv = totals.get(f"{grade}:n", 0.0), totals.get(f"{grade}:conv", 0.0)
        rate = _rate(conv, n)
        lift = round((conv / n) / (conv_all / n_all), 4) if n and conv_all else None
        out[grade] = {"n": int(n), "converted": int(conv), "rate": rate, "lift": lift}
    return out
