"""Trend buckets: per-batch aggregation, merging into hours/days/weeks, lift; score edges of the distribution."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from leadscore.api.insights import distribution_bounds
from leadscore.models.monitoring.trends import (
    WEEK_ORIGIN_S,
    aggregate,
    bucket_start,
    merge,
    outcome_totals,
)
from leadscore.models.scoring.scorer import ScoringPolicy, lowest_points, score_bins, to_score
from leadscore.schemas.learning import TrainingExample
from leadscore.schemas.scores import LeadScored, ScoreComponents

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
POLICY = ScoringPolicy(grade_thresholds=(80, 60, 40))


def scored(
    n: int, score: int, at: datetime, components: ScoreComponents | None = None
) -> LeadScored:
    return LeadScored(
        id=f"sc_{n}",
        lead_id=f"lead-{n}",
        score=score,
        probability=score / 100,
        grade=POLICY.grade(score),  # type: ignore[arg-type]
        model_version="v",
        base_score=20.0,
        reasons=[],
        components=components,
        cause_event_id=f"e{n}",
        event_time=at,
        scored_at=at + timedelta(days=30),  # trends follow event time, not the clock
    )


def example(n: int, probability: float, label: int, at: datetime) -> TrainingExample:
    return TrainingExample(
        id=f"ex_{n}",
        lead_id=f"lead-{n}",
        label=label,  # type: ignore[arg-type]
        outcome="converted" if label else "disqualified",
        outcome_event_id=f"o{n}",
        outcome_time=at,
        feature_time=None,
        feature_spec_version=1,
        features=[],
        model_version="v",
        probability=probability,
        produced_at=at,
    )


def grade_of(p: float) -> str:
    return POLICY.grade(to_score(p))


def test_a_batch_adds_one_amount_per_field_and_bucket() -> None:
    parts = ScoreComponents(
        fit=10.0, engagement=30.0, families={"behavioral": 25.0, "demographic": 10.0}
    )
    scores = [
        scored(1, 85, T0 + timedelta(minutes=5), parts),
        scored(2, 100, T0 + timedelta(minutes=50), parts),
        scored(3, 39, T0 + timedelta(minutes=59)),  # no components
        scored(4, 61, T0 + timedelta(hours=1)),  # the next hour
        scored(5, 50, T0, parts),  # a re-emitted score: not counted
    ]
    examples = [
        example(6, 0.795, 1, T0 + timedelta(minutes=1)),
        example(7, 0.35, 0, T0 + timedelta(hours=1, minutes=2)),
    ]

    rows = aggregate(scores, examples, grade_of=grade_of, bucket_s=3600, skip_ids={"sc_5"})

    start = int(T0.timestamp())
    assert rows[start] == {
        "scores": 3,
        "bin:8": 1, "bin:9": 1, "bin:3": 1,  # 100 counts in the top bin
        "grade:A": 2, "grade:D": 1,
        "with_components": 2,
        "fit": 20.0, "engagement": 60.0, "fam:behavioral": 50.0, "fam:demographic": 20.0,
        "out:A:n": 1, "out:A:conv": 1,  # 0.795 scores 80: an A
    }  # fmt: skip
    assert rows[start + 3600] == {
        "scores": 1,
        "bin:6": 1,
        "grade:B": 1,
        "out:D:n": 1,
        "out:D:conv": 0,
    }
    # Counts are ints (HINCRBY), sums floats (HINCRBYFLOAT).
    assert all(
        isinstance(v, int)
        for k, v in rows[start].items()
        if k not in ("fit", "engagement") and not k.startswith("fam:")
    )
    assert isinstance(rows[start]["fit"], float)


def test_buckets_are_aligned_to_the_epoch_and_weeks_to_mondays() -> None:
    t = datetime(2026, 3, 5, 13, 45, tzinfo=UTC)  # a Thursday
    assert bucket_start(t, 3600) == int(datetime(2026, 3, 5, 13, tzinfo=UTC).timestamp())
    assert bucket_start(t, 86_400) == int(datetime(2026, 3, 5, tzinfo=UTC).timestamp())
    assert bucket_start(t, 604_800, WEEK_ORIGIN_S) == int(T0.timestamp())


def test_merge_sums_stored_buckets_and_lists_empty_ones() -> None:
    h = int(T0.timestamp())
    stored = {
        h: {"scores": 2, "bin:8": 2, "grade:A": 2, "with_components": 2, "fit": 20.0, "engagement": 40.0,
            "fam:behavioral": 30.0, "out:A:n": 2, "out:A:conv": 1},
        h + 3600: {"scores": 1, "bin:2": 1, "grade:D": 1, "with_components": 1, "fit": 5.0, "engagement": 1.0,
                   "fam:behavioral": 3.0, "out:D:n": 2, "out:D:conv": 0},
        h + 2 * 86_400: {"scores": 4, "grade:C": 4, "bin:4": 4},
        h + 3 * 86_400: {"scores": 100},  # outside the range
    }  # fmt: skip

    body = merge(stored, since_s=h, until_s=h + 3 * 86_400, bucket_s=86_400)

    assert body["bucket_s"] == 86_400
    first, empty, third = body["buckets"]
    assert first["start"] == "2026-03-02T00:00:00Z"
    assert first["scores"] == 3 and first["bins"] == [0, 0, 1, 0, 0, 0, 0, 0, 2, 0]
    assert first["grades"] == {"A": 2, "B": 0, "C": 0, "D": 1}
    assert first["fit"] == pytest.approx(25 / 3, abs=1e-4) and first["engagement"] == pytest.approx(
        41 / 3, abs=1e-4
    )
    assert first["families"] == {"behavioral": pytest.approx(11.0)}
    assert first["outcomes"]["A"] == {"n": 2, "converted": 1, "rate": 0.5}
    assert first["outcomes"]["D"] == {"n": 2, "converted": 0, "rate": 0.0}
    assert first["outcomes"]["B"] == {"n": 0, "converted": 0, "rate": None}
    assert empty == {
        "start": "2026-03-03T00:00:00Z", "scores": 0, "bins": [0] * 10, "grades": {"A": 0, "B": 0, "C": 0, "D": 0},
        "families": {}, "fit": None, "engagement": None,
        "outcomes": {g: {"n": 0, "converted": 0, "rate": None} for g in "ABCD"},
    }  # fmt: skip
    assert third["scores"] == 4 and third["fit"] is None  # no components: no mean
    assert body["totals"]["scores"] == 7
    # overall 1 of 4 converted: A's rate 0.5 is twice it, D's 0 is 0 times it, B has none
    assert body["totals"]["overall"] == {"n": 4, "converted": 1, "rate": 0.25}
    assert body["totals"]["outcomes"]["A"] == {"n": 2, "converted": 1, "rate": 0.5, "lift": 2.0}
    assert body["totals"]["outcomes"]["D"]["lift"] == 0.0
    assert body["totals"]["outcomes"]["B"]["lift"] is None


def test_merge_into_weeks_starts_on_monday_and_covers_a_partial_range() -> None:
    h = int(T0.timestamp())
    stored = {
        h - 3600: {"scores": 1},
        h: {"scores": 2},
        h + 6 * 86_400 + 3600: {"scores": 3},
        h + 7 * 86_400: {"scores": 4},
    }
    body = merge(
        stored, since_s=h - 86_400, until_s=h + 8 * 86_400, bucket_s=604_800, origin_s=WEEK_ORIGIN_S
    )
    assert [(b["start"], b["scores"]) for b in body["buckets"]] == [
        ("2026-02-23T00:00:00Z", 1),
        ("2026-03-02T00:00:00Z", 5),
        ("2026-03-09T00:00:00Z", 4),
    ]


def test_lift_is_undefined_without_conversions_or_outcomes() -> None:
    assert outcome_totals({})["A"] == {"n": 0, "converted": 0, "rate": None, "lift": None}
    none_converted = outcome_totals({"A:n": 3, "A:conv": 0, "B:n": 1, "B:conv": 0})
    assert none_converted["A"]["rate"] == 0.0 and none_converted["A"]["lift"] is None
    exact = outcome_totals({"A:n": 3, "A:conv": 1, "B:n": 6, "B:conv": 1})  # overall 2/9
    assert exact["A"]["lift"] == pytest.approx((1 / 3) / (2 / 9), abs=1e-4)
    assert exact["B"]["lift"] == pytest.approx((1 / 6) / (2 / 9), abs=1e-4)


# --- the distribution's edges ---------------------------------------------------------------------


def test_lowest_points_is_exactly_where_to_score_changes() -> None:
    rng = random.Random(0)
    edges = [s / 100 + d for s in range(101) for d in (-0.005, -1e-12, 0.0, 1e-12, 0.005)]
    for p in [
        0.795,
        0.805,
        0.575,
        0.005,
        0.995,
        0.0,
        1.0,
        *edges,
        *(rng.random() for _ in range(5000)),
    ]:
        p = min(max(p, 0.0), 1.0)
        points = p * 100.0  # as the leaderboard stores it
        s = to_score(p)
        assert points >= lowest_points(s), p
        assert points < lowest_points(s + 1), p


def test_score_bins_cover_every_score_once() -> None:
    assert score_bins(20)[0] == (0, 5) and score_bins(20)[-1] == (95, 100)
    assert score_bins(1) == [(0, 100)]
    for n in range(1, 101):
        ranges = score_bins(n)
        assert len(ranges) == n and ranges[0][0] == 0 and ranges[-1][1] == 100
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_distribution_bounds_agree_with_the_workers_score_and_grade() -> None:
    ranges, bins, grades = distribution_bounds(20, (80, 60, 40))
    for p in (0.795, 0.7949999, 0.805, 0.595, 0.395, 0.3949, 0.0, 1.0, 0.025, 0.975):
        points, s = p * 100.0, to_score(p)
        (i,) = [i for i, (low, high) in enumerate(bins) if low <= points < high]
        low, high = ranges[i]
        assert low <= s < high or (i == len(ranges) - 1 and s == 100)
        (g,) = [g for g, (low, high) in zip("ABCD", grades) if low <= points < high]
        assert g == POLICY.grade(s), p
