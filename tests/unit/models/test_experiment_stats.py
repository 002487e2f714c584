"""Experiment statistics under continuous peeking, on simulated conversions (no services).

A/A: 200 experiments, looked at after every 100 outcomes per arm up to 4,000: the
always-valid test's false positives stay at or under 5 %, where a fixed 1.96 z-test read at
every look goes far above. A/B with a known-better challenger: the test finds it, with
about the planned number of outcomes.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from leadscore.models.experiments.assignment import ArmsError, arm_of, check_arms
from leadscore.models.experiments.stats import SequentialTest, sample_size, wilson

BASE, EFFECT, ALPHA = 0.10, 0.03, 0.05
LOOK_EVERY, MAX_N, RUNS = 100, 4_000, 200


def _peek(rng: np.random.Generator, rate_a: float, rate_b: float) -> tuple[bool, bool, int]:
    """(always-valid test rejected, fixed z rejected at some look, outcomes per arm at the
    always-valid rejection or MAX_N)."""
    a = np.cumsum(rng.random(MAX_N) < rate_a)
    b = np.cumsum(rng.random(MAX_N) < rate_b)
    test = SequentialTest(tau=EFFECT, alpha=ALPHA)
    naive = False
    for n in range(LOOK_EVERY, MAX_N + 1, LOOK_EVERY):
        ca, cb = int(a[n - 1]), int(b[n - 1])
        test.look((ca, n), (cb, n))
        pooled = (ca + cb) / (2 * n)
        se = math.sqrt(max(pooled * (1 - pooled) * 2 / n, 1e-12))
        naive = naive or abs(cb - ca) / n / se > 1.96
        if test.decided:
            return True, naive, n
    return False, naive, MAX_N


def test_a_a_experiments_peeked_at_every_day_keep_false_positives_at_5_percent() -> None:
    rng = np.random.default_rng(7)
    results = [_peek(rng, BASE, BASE) for _ in range(RUNS)]
    fp = sum(r[0] for r in results)
    naive_fp = sum(r[1] for r in results)
    low, high = wilson(fp, RUNS)
    print(f"A/A: always-valid {fp}/{RUNS} ({fp / RUNS:.1%}, 95% CI {low:.1%}-{high:.1%}); "
          f"fixed 1.96 at every look {naive_fp}/{RUNS} ({naive_fp / RUNS:.1%})")  # fmt: skip
    assert fp / RUNS <= ALPHA
    assert naive_fp / RUNS > 2 * ALPHA, "peeking with a fixed threshold should inflate errors"


def test_a_better_challenger_is_found_with_about_the_planned_outcomes() -> None:
    rng = np.random.default_rng(11)
    results = [_peek(rng, BASE, BASE + EFFECT) for _ in range(RUNS)]
    found = [n for rejected, _, n in results if rejected]
    planned = sample_size(BASE, EFFECT, ALPHA, 0.8)
    median = float(np.median(found))
    print(f"A/B (+{EFFECT}): found in {len(found)}/{RUNS} within {MAX_N} per arm; "
          f"median {median:.0f} outcomes per arm; a fixed test plans {planned}")  # fmt: skip
    assert len(found) / RUNS >= 0.8
    assert 0.5 * planned <= median <= 2.0 * planned


def test_assignment_is_stable_independent_across_experiments_and_matches_the_weights() -> None:
    arms = [("control", 0.7), ("challenger", 0.3)]
    leads = [f"lead-{i}" for i in range(20_000)]
    first = [arm_of("ex_1", lead, arms) for lead in leads]
    assert first == [arm_of("ex_1", lead, arms) for lead in leads]
    share = Counter(first)["challenger"] / len(leads)
    assert abs(share - 0.3) < 0.015, share
    other = [arm_of("ex_2", lead, arms) for lead in leads]
    both = sum(a == b == "challenger" for a, b in zip(first, other, strict=True)) / len(leads)
    assert abs(both - 0.09) < 0.01, "two experiments split leads independently"


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([("a", 1.0)], "two arms"),
        ([("a", 0.5), ("a", 0.5)], "differ"),
        ([("a", 0.6), ("b", 0.6)], "sum to 1"),
        ([("a", 0.0), ("b", 1.0)], "in \\(0, 1\\]"),
    ],
)
def test_bad_arms_are_refused_with_a_reason(arms: list[tuple[str, float]], message: str) -> None:
    with pytest.raises(ArmsError, match=message):
        check_arms(arms)
