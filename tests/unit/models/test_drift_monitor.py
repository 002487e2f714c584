"""Drift windows (one row per lead), the live baseline, and the monitor's saved state."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore.models.monitoring.drift import DriftConfig
from leadscore.models.monitoring.monitor import ClosedWindow, DriftMonitor, WindowBuffer

NAMES = ("a", "b", "c", "kind")


def _window(rng: np.random.Generator, n: int, shift: float = 0.0) -> ClosedWindow:
    X = np.column_stack(
        [rng.normal(shift, 1, n), rng.exponential(1, n), rng.normal(0, 1, n), rng.integers(0, 3, n)]
    )
    return ClosedWindow(X, rng.beta(2, 5, n) + shift / 10, 0.0, 1.0)


def test_a_window_counts_each_lead_once_with_its_latest_vector() -> None:
    buffer = WindowBuffer(size=3)
    assert buffer.add("x", np.array([1.0]), 0.1, 10.0) is None
    assert buffer.add("x", np.array([2.0]), 0.2, 12.0) is None  # replaces x's row
    assert buffer.add("y", np.array([3.0]), 0.3, 5.0) is None
    assert len(buffer) == 2
    window = buffer.add("z", np.array([4.0]), 0.4, 11.0)
    assert window is not None
    assert sorted(window.X[:, 0].tolist()) == [2.0, 3.0, 4.0]
    assert sorted(window.scores.tolist()) == [0.2, 0.3, 0.4]
    assert (window.start, window.end) == (5.0, 12.0)
    assert len(buffer) == 0  # tumbling: the next window starts empty


DAY_S = 86400.0


def test_a_min_span_holds_a_full_window_open_until_it_spans_that_long() -> None:
    buffer = WindowBuffer(size=3, min_span_s=7 * DAY_S)
    times = [0.0, 0.5, 1.0, 2.0, 6.0]  # days: 3 leads after 1 day, 5 after 6 days
    for i, t in enumerate(times):
        assert buffer.add(f"l{i}", np.array([float(i)]), 0.1, t * DAY_S) is None
    assert len(buffer) == 5  # full since the third lead, still open
    assert buffer.add("l0", np.array([10.0]), 0.2, 6.5 * DAY_S) is None  # dedupe still holds
    assert len(buffer) == 5
    window = buffer.add("l5", np.array([5.0]), 0.3, 7.0 * DAY_S)  # 7 days after the first row
    assert window is not None
    assert sorted(window.X[:, 0].tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0, 10.0]
    assert (window.start, window.end) == (0.0, 7 * DAY_S)
    assert len(buffer) == 0
    # The next window waits for its own span; size still counts: 1 lead over 8 days is not enough.
    assert buffer.add("a", np.array([0.0]), 0.1, 8 * DAY_S) is None
    assert buffer.add("a", np.array([0.0]), 0.1, 16 * DAY_S) is None
    assert buffer.add("b", np.array([0.0]), 0.1, 16 * DAY_S) is None
    assert buffer.add("c", np.array([0.0]), 0.1, 16 * DAY_S) is not None


def test_min_span_zero_closes_at_size_as_before() -> None:
    buffer = WindowBuffer(size=2, min_span_s=0.0)
    assert buffer.add("x", np.array([1.0]), 0.1, 5.0) is None
    window = buffer.add("y", np.array([2.0]), 0.1, 5.0)  # zero span is enough
    assert window is not None and window.X.shape == (2, 1)


def _feed(buffer: WindowBuffer, n_events: int, seed: int) -> tuple[list[int], list[ClosedWindow]]:
    """Events of up to 5,000 leads (a few rescored often) over 10 days: lengths seen, windows."""
    rng = np.random.default_rng(seed)
    leads = rng.zipf(1.5, n_events) % 5000
    lengths, windows = [], []
    for i, lead in enumerate(leads):
        t = i * 10 * DAY_S / n_events
        window = buffer.add(f"lead{lead}", np.array([float(lead), float(i)]), 0.5, t)
        lengths.append(len(buffer))
        if window is not None:
            windows.append(window)
    return lengths, windows


def test_the_row_cap_bounds_memory_and_the_sample_is_deterministic() -> None:
    buffer = WindowBuffer(size=50, min_span_s=4 * DAY_S, max_rows=200)
    lengths, windows = _feed(buffer, 20_000, seed=3)
    assert max(lengths) == 200  # capped, while ~550 distinct leads come in per window
    assert len(windows) == 2  # days 0-4, 4-8 (the rest stays open)
    assert all(w.X.shape == (200, 2) for w in windows)
    for w in windows:
        assert len(set(w.X[:, 0].tolist())) == 200  # still one row per lead
    # The same input gives the same windows, row for row.
    _, again = _feed(WindowBuffer(size=50, min_span_s=4 * DAY_S, max_rows=200), 20_000, 3)
    for w, w2 in zip(windows, again, strict=True):
        np.testing.assert_array_equal(w.X, w2.X)
    # Each window draws its own sample (the window number is in the key).
    assert set(windows[0].X[:, 0].tolist()) != set(windows[1].X[:, 0].tolist())
    # Without max_rows the cap is 20 windows' worth of leads.
    lengths, _ = _feed(WindowBuffer(size=10, min_span_s=4 * DAY_S), 20_000, seed=3)
    assert max(lengths) == 200


def test_the_capped_sample_is_uniform_over_leads_not_rows() -> None:
    # 100 busy leads with 50 rows each and 10,000 quiet leads with one row, cap 1,000: a
    # uniform sample of the 10,100 leads holds ~10 busy ones, a sample of rows ~330.
    rng = np.random.default_rng(4)
    busy_rows = [f"busy{i}" for i in range(100) for _ in range(50)]
    leads = busy_rows + [f"quiet{i}" for i in range(10_000)]
    order = rng.permutation(len(leads))
    buffer = WindowBuffer(size=100, min_span_s=DAY_S, max_rows=1000)
    for k, j in enumerate(order):
        assert buffer.add(leads[j], np.array([k]), 0.5, 0.0) is None
    kept = list(buffer._rows)
    assert len(kept) == 1000
    busy = sum(lead.startswith("busy") for lead in kept)
    assert 2 <= busy <= 25, busy
    # A kept busy lead's row is its latest one.
    latest = {leads[j]: k for k, j in enumerate(order)}
    assert all(buffer._rows[lead][0][0] == latest[lead] for lead in kept)


def test_window_buffer_rejects_a_cap_below_the_size() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        WindowBuffer(size=100, max_rows=50)
    with pytest.raises(ValueError, match="min_span_s"):
        WindowBuffer(size=100, min_span_s=-1.0)


def test_baseline_windows_are_not_tested_then_windows_are() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor("v1", NAMES, DriftConfig(), baseline_windows=3)
    reports = [monitor.test(_window(rng, 500)) for _ in range(3)]
    assert [r.tested for r in reports] == [False, False, False]
    assert "baseline complete: 1500 rows" in reports[-1].reason
    assert monitor.baseline_ready
    calm = [monitor.test(_window(rng, 500)) for _ in range(20)]
    assert all(r.tested for r in calm)
    assert [r.level for r in calm].count("none") == 20
    assert [r.window_index for r in calm] == list(range(3, 23))
    shifted = [monitor.test(_window(rng, 500, shift=0.8)) for _ in range(3)]
    assert shifted[0].level == "none"  # one window is not persistence
    assert shifted[1].level != "none" and "a" in shifted[1].persistent_features
    assert shifted[1].score is not None and shifted[1].score.drifted  # the scores moved too


@pytest.mark.parametrize("ready", [False, True])
def test_saved_state_resumes_exactly(ready: bool) -> None:
    rng = np.random.default_rng(2)
    config = DriftConfig()
    monitor = DriftMonitor("v1", NAMES, config, baseline_windows=2)
    monitor.test(_window(rng, 400))
    if ready:
        monitor.test(_window(rng, 400))
        monitor.test(_window(rng, 400, shift=0.8))  # one drifted window in the history
    restored = DriftMonitor.from_bytes(monitor.to_bytes(), NAMES, config, baseline_windows=2)
    assert restored.version == "v1"
    assert restored.windows_seen_ == monitor.windows_seen_
    assert restored.baseline_ready == ready
    following = [_window(rng, 400, shift=0.8) for _ in range(2)]
    for window in following:
        a, b = monitor.test(window), restored.test(window)
        assert a.to_dict() == b.to_dict()


def test_performance_window_state_round_trips() -> None:
    from leadscore.models.monitoring.performance import PerformanceWindow

    rng = np.random.default_rng(3)
    window = PerformanceWindow(size=50, auc_drop=0.05)
    for _ in range(80):
        y = int(rng.integers(0, 2))
        window.add(float(np.clip(0.3 * y + rng.uniform(0, 0.7), 0, 1)), y)
    restored = PerformanceWindow.from_dict(window.to_dict(), size=50, auc_drop=0.05)
    assert restored.summary() == window.summary()
    window.add(0.9, 0)
    restored.add(0.9, 0)
    assert restored.summary() == window.summary()


def test_performance_alert_levels_follow_the_auc_drop() -> None:
    from leadscore.models.monitoring.performance import PerformanceWindow

    rng = np.random.default_rng(4)

    def fill(window: PerformanceWindow, noise: float, n: int) -> None:
        for _ in range(n):
            y = int(rng.integers(0, 2))
            window.add(float(np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, noise), 0, 1)), y)

    window = PerformanceWindow(size=400, auc_drop=0.05)
    fill(window, 0.1, 400)  # the first full window is the baseline: a near-perfect model
    assert window.baseline_ is not None and window.baseline_["roc_auc"] > 0.99
    assert window.level() == "none"
    fill(window, 0.45, 400)  # the same model on a world it no longer ranks well
    auc = window.metrics()["roc_auc"]
    drop = window.baseline_["roc_auc"] - auc
    assert window.level() == ("high" if drop >= 0.10 else "medium" if drop >= 0.05 else "none")
    assert drop >= 0.10 and window.level() == "high"
    summary = window.summary()
    assert summary["labels_seen"] == 800 and summary["window"]["n"] == 400
