"""Aggregates for the dashboard: ``/v1/leads/distribution`` and ``/v1/trends``.

The distribution counts the leaderboard with ZCOUNT (never reading its members); the trends
merge the event-time buckets the worker keeps (:mod:`leadscore.models.monitoring.trends`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from leadscore.api.auth import AUTH_ERRORS as _AUTH
from leadscore.api.auth import require_scope
from leadscore.api.errors import ApiError
from leadscore.infra.access import ApiKey
from leadscore.models.monitoring.trends import BUCKET_SIZES_S, GRADES, WEEK_ORIGIN_S, merge
from leadscore.models.scoring.scorer import lowest_points, score_bins

router = APIRouter()

#: Default range of GET /v1/trends: this much before the end of the newest bucket.
DEFAULT_TRENDS_SPAN = timedelta(days=30)
#: Most buckets one GET /v1/trends answer lists.
MAX_TREND_BUCKETS = 5000


def distribution_bounds(
    n_bins: int, thresholds: tuple[int, int, int]
) -> tuple[list[tuple[int, int]], list[tuple[float, float]], list[tuple[float, float]]]:
    """The score ranges of the bins, and the leaderboard ``[low, high)`` bounds of bins and grades.

    The bounds are in the leaderboard's units (probability x 100) and sit exactly where
    :func:`~leadscore.models.scoring.scorer.to_score` changes integer score, so a lead counts in
    the bin and grade of its score. Grades are listed A, B, C, D.
    """
    ranges = score_bins(n_bins)
    bins = [
        (lowest_points(low), lowest_points(high) if i < n_bins - 1 else math.inf)
        for i, (low, high) in enumerate(ranges)
    ]
    a, b, c = (lowest_points(t) for t in thresholds)
    grades = [(a, math.inf), (b, a), (c, b), (-math.inf, c)]
    return ranges, bins, grades


@router.get(
    "/v1/leads/distribution",
    tags=["leads"],
    summary="How every lead's latest score is distributed: score bins and grades",
    responses=_AUTH,
)
async def score_distribution(
    request: Request,
    bins: int = Query(20, ge=1, le=100, description="number of equal score bins over 0–100"),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    """Counts over the leaderboard (each lead's latest published score): one ZCOUNT per bin
    and per grade in one pipeline, O(bins x log N). A bin holds the scores ``from <= score <
    to``; the last one also holds 100."""
    ctx = request.app.state.ctx
    thresholds = ctx.settings.grade_thresholds
    ranges, bin_bounds, grade_bounds = distribution_bounds(bins, thresholds)
    total, counts = await ctx.store.count_between(bin_bounds + grade_bounds)
    return {
        "total": total,
        "bins": [
            {"from": low, "to": high, "count": count}
            for (low, high), count in zip(ranges, counts[:bins])
        ],
        "grades": dict(zip(GRADES, counts[bins:])),
        "thresholds": dict(zip(GRADES, thresholds)),
    }


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ApiError(
            422,
            "invalid_range",
            f"{name} must carry a timezone, e.g. 2026-11-01T00:00:00Z; got {value.isoformat()}",
        )
    return value


def _align(t_s: int, bucket_s: int, origin_s: int) -> int:
    return (t_s - origin_s) // bucket_s * bucket_s + origin_s


@router.get(
    "/v1/trends",
    tags=["leads"],
    summary="Scores, grades, score components and outcomes per hour, day or week of event time",
    responses={
        **_AUTH,
        422: {"description": "a bucket smaller than the stored one, or a bad range"},
    },
)
async def trends(
    request: Request,
    since: datetime | None = Query(
        None, description="start (inclusive); default: 30 days before `until`"
    ),
    until: datetime | None = Query(
        None, description="end (exclusive); default: the end of the newest bucket with data"
    ),
    bucket: Literal["hour", "day", "week"] = Query(
        "day", description="bucket size (weeks start on Monday, UTC)"
    ),
    key: ApiKey = Depends(require_scope("read")),
) -> dict[str, Any]:
    """The worker's trend buckets (``LEADSCORE_TRENDS_BUCKET_S``, by event time) merged into
    ``bucket``. Every bucket of the range is listed, empty ones with zeros."""
    ctx = request.app.state.ctx
    stored_s: int = ctx.settings.trends_bucket_s
    bucket_s = BUCKET_SIZES_S[bucket]
    origin_s = WEEK_ORIGIN_S if bucket == "week" else 0
    if bucket_s < stored_s or bucket_s % stored_s or origin_s % stored_s:
        raise ApiError(
            422, "bucket_too_small",
            f"bucket={bucket} ({bucket_s} s) cannot be built from the stored {stored_s} s buckets "
            "(LEADSCORE_TRENDS_BUCKET_S); ask for a larger bucket",
        )  # fmt: skip
    since, until = _aware(since, "since"), _aware(until, "until")
    if until is not None:
        until_s = math.ceil(until.timestamp())
    else:
        newest = await ctx.store.newest_trend_bucket()
        end = newest + stored_s if newest is not None else int(datetime.now(UTC).timestamp())
        until_s = _align(end - 1, bucket_s, origin_s) + bucket_s  # the end of its display bucket
    if since is not None:
        since_s = math.ceil(since.timestamp())
    else:
        since_s = _align(until_s - int(DEFAULT_TRENDS_SPAN.total_seconds()), bucket_s, origin_s)
    if since_s >= until_s:
        raise ApiError(422, "invalid_range", "since must be before until")
    n_buckets = (until_s - _align(since_s, bucket_s, origin_s) + bucket_s - 1) // bucket_s
    if n_buckets > MAX_TREND_BUCKETS:
        raise ApiError(
            422, "invalid_range",
            f"the range holds {n_buckets} {bucket} buckets; at most {MAX_TREND_BUCKETS}: "
            "narrow it or ask for a larger bucket",
        )  # fmt: skip
    stored = await ctx.store.trend_buckets(since_s, until_s)
    body = merge(stored, since_s=since_s, until_s=until_s, bucket_s=bucket_s, origin_s=origin_s)
    body["since"] = _iso(since_s)
    body["until"] = _iso(until_s)
    return body


def _iso(t_s: int) -> str:
    return datetime.fromtimestamp(t_s, UTC).isoformat().replace("+00:00", "Z")
