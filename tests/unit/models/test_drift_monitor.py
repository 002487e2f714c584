"""Drift windows (one row per lead), the live baseline, and the monitor's saved state."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore.models.drift import DriftConfig
from leadscore.models.drift_monitor import ClosedWindow, DriftMonitor, WindowBuffer

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
