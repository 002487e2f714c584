"""Snapshot rows from scored vectors: one per lead per day, before the outcome, label within the horizon."""

from __future__ import annotations

from leadscore.models.training.snapshots import snapshot_set

DAY = 86_400.0


def test_rows_follow_the_point_in_time_rules() -> None:
    samples = [
        ("a", 0.0 * DAY, [1.0]),
        ("a", 0.5 * DAY, [2.0]),  # same day as the one before: the later one is kept
        ("a", 3.0 * DAY, [3.0]),
        ("a", 10.0 * DAY, [4.0]),  # at the outcome: never a row
        ("a", 12.0 * DAY, [5.0]),  # after the outcome: never a row
        ("b", 1.0 * DAY, [6.0]),  # converts 40 days later: outside the horizon, a negative
        ("c", 2.0 * DAY, [7.0]),  # no outcome, horizon passed: a negative
        ("d", 95.0 * DAY, [8.0]),  # horizon not passed by as_of: dropped, whatever happens
    ]
    outcomes = {"a": (10.0 * DAY, 1), "b": (41.0 * DAY, 1), "d": (96.0 * DAY, 1)}
    s = snapshot_set(samples, outcomes, n_features=1, horizon_s=30 * DAY, as_of=100 * DAY)
    rows = {(lead, float(x)): int(y) for lead, x, y in zip(s.leads, s.X[:, 0], s.y)}
    assert rows == {("a", 2.0): 1, ("a", 3.0): 1, ("b", 6.0): 0, ("c", 7.0): 0}
    assert list(s.times) == sorted(s.times)


def test_a_disqualified_lead_gives_negatives_and_as_of_defaults_to_the_newest_time() -> None:
    samples = [("a", 0.0, [1.0]), ("z", 50 * DAY, [0.0])]
    s = snapshot_set(samples, {"a": (5 * DAY, 0)}, n_features=1, horizon_s=30 * DAY)
    assert s.as_of == 50 * DAY
    assert s.y.tolist() == [0] and s.leads.tolist() == ["a"]
