"""Which drift levels trigger a retrain, and the drift agent's settings mapping."""

from __future__ import annotations

import pytest

from leadscore.models.monitoring.report import level_at_least
from leadscore.settings import Settings
from leadscore.streams.drift import drift_config


@pytest.mark.parametrize(
    ("level", "threshold", "expected"),
    [
        ("none", "low", False),
        ("low", "low", True),
        ("low", "medium", False),
        ("medium", "medium", True),
        ("high", "medium", True),
        ("medium", "high", False),
        ("high", "off", False),
    ],
)
def test_level_at_least(level: str, threshold: str, expected: bool) -> None:
    assert level_at_least(level, threshold) is expected


def test_drift_config_follows_settings() -> None:
    config = drift_config(
        Settings(
            drift_persistence="3,4",
            drift_alpha=0.05,
            drift_window_size=150,
            drift_ks_min_effect=0.2,
        )
    )
    assert (config.persistence_k, config.persistence_m) == (3, 4)
    assert config.alpha == 0.05 and config.ks_min_effect == 0.2
    assert config.min_window == 150  # never above the window size, or no window is tested


def test_bad_persistence_is_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match="k <= m"):
        Settings(drift_persistence="4,3")
