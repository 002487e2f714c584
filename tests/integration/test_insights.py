"""The dashboard's Redis data on a real Redis: leaderboard distribution edges, recent activity, trend buckets.

No broker here: the store is written as the worker writes it (``ScoreStore.write_batch``)
or the leaderboard directly, and read as the API reads it. The worker's own writes are
checked in ``test_worker.py`` and the routes in ``test_api.py``.
"""

from __future__ import annotations

import random

import orjson
import pytest
import redis.asyncio as aioredis

from leadscore.api.insights import distribution_bounds
from leadscore.infra.redis_store import ScoreStore
from leadscore.models.scoring.scorer import ScoringPolicy, score_bins, to_score

pytestmark = [pytest.mark.integration]

POLICY = ScoringPolicy(grade_thresholds=(80, 60, 40))


async def test_distribution_counts_each_lead_in_the_bin_and_grade_of_its_score(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    store = ScoreStore(redis_client, name_prefix)
    rng = random.Random(7)
    edges = [
        0.795,
        0.7949999,
        0.805,
        0.595,
        0.5949999,
        0.395,
        0.3949999,
        0.575,
        0.0,
        1.0,
        0.005,
        0.004999,
        0.995,
    ]
    probabilities = edges + [round(rng.random(), 6) for _ in range(500)]
    # As the worker writes the leaderboard: member lead id, score probability x 100.
    await redis_client.zadd(
        store.leaderboard_key, {f"lead-{i}": p * 100.0 for i, p in enumerate(probabilities)}
    )

    for n_bins, thresholds in (
        (20, (80, 60, 40)),
        (3, (80, 60, 40)),
        (100, (75, 50, 25)),
        (1, (90, 50, 10)),
    ):
        policy = ScoringPolicy(grade_thresholds=thresholds)
        ranges, bins, grades = distribution_bounds(n_bins, thresholds)
        total, counts = await store.count_between(bins + grades)
        scores = [to_score(p) for p in probabilities]  # the worker's own function
        expected_bins = [
            sum(low <= s < high or (i == n_bins - 1 and s == 100) for s in scores)
            for i, (low, high) in enumerate(score_bins(n_bins))
        ]
        expected_grades = [sum(policy.grade(s) == g for s in scores) for g in "ABCD"]
        assert total == len(probabilities)
        assert counts[:n_bins] == expected_bins, n_bins
        assert counts[n_bins:] == expected_grades, thresholds
    # The edge cases by name: 0.795 scores 80 (A), 0.7949999 scores 79 (B).
    a_low = distribution_bounds(20, (80, 60, 40))[2][0][0]  # grade A's lower bound
    assert 0.7949999 * 100.0 < a_low <= 0.795 * 100.0


async def test_activity_is_newest_first_and_capped(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    store = ScoreStore(redis_client, name_prefix, activity_length=3)

    def entry(n: int) -> bytes:
        return orjson.dumps(
            {"id": f"e{n}", "type": "lead.page_viewed", "time": "2026-01-01T00:00:00Z", "data": {}}
        )

    await store.write_batch([], [], {}, activity={"a": [entry(1), entry(2)]})
    await store.write_batch([], [], {}, activity={"a": [entry(3), entry(4)], "b": [entry(9)]})
    assert [e["id"] for e in await store.activity("a")] == ["e4", "e3", "e2"]
    assert [e["id"] for e in await store.activity("a", 2)] == ["e4", "e3"]
    assert [e["id"] for e in await store.activity("b")] == ["e9"]
    assert await store.activity("nobody") == []

    none_kept = ScoreStore(redis_client, name_prefix + "zero:", activity_length=0)
    await none_kept.write_batch([], [], {}, activity={"a": [entry(1)]})
    assert await redis_client.exists(none_kept.activity_key("a")) == 0


async def test_trend_buckets_add_up_expire_and_the_index_drops_old_ones(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    day = 86_400
    store = ScoreStore(redis_client, name_prefix, trends_retention_s=10 * day)
    t0 = 1_767_225_600  # 2026-01-01T00:00Z
    await store.write_batch([], [], {}, trends={t0: {"scores": 2, "fit": 1.5, "grade:A": 2}})
    await store.write_batch(
        [], [], {}, trends={t0: {"scores": 1, "fit": 0.25}, t0 + 3600: {"scores": 5}}
    )

    assert await store.trend_buckets(t0, t0 + day) == {
        t0: {"scores": 3.0, "fit": 1.75, "grade:A": 2.0},
        t0 + 3600: {"scores": 5.0},
    }
    assert await store.trend_buckets(t0 + 3600, t0 + 7200) == {t0 + 3600: {"scores": 5.0}}
    assert 9 * day < await redis_client.ttl(store.trends_key(t0)) <= 10 * day
    assert await store.newest_trend_bucket() == t0 + 3600

    # A bucket 10 days after t0 + 3600 leaves t0 + 3600 in the index (exactly the
    # retention behind the newest), but drops t0.
    await store.write_batch([], [], {}, trends={t0 + 3600 + 10 * day: {"scores": 1}})
    starts = [int(s) for s in await redis_client.zrange(store.trends_index_key, 0, -1)]
    assert starts == [t0 + 3600, t0 + 3600 + 10 * day]
    # An expired hash whose start is still indexed is skipped, not returned empty.
    await redis_client.delete(store.trends_key(t0 + 3600))
    assert await store.trend_buckets(0, t0 + 20 * day) == {t0 + 3600 + 10 * day: {"scores": 1.0}}
