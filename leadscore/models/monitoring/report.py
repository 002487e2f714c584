"""What a drift test of one window found: the alert levels, each feature's test, the window's report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ALERT_LEVELS",
    "DriftReport",
    "FeatureDrift",
]

AlertLevel = Literal["none", "low", "medium", "high"]
ALERT_LEVELS: tuple[str, ...] = ("none", "low", "medium", "high")
#: Name under which the score distribution's test appears in a report.
SCORE_FEATURE = "(score)"


def level_at_least(level: str, threshold: str) -> bool:
    """Whether alert ``level`` reaches ``threshold`` (``off`` is never reached).

    Examples:
        >>> level_at_least("medium", "low"), level_at_least("high", "off")
        (True, False)
    """
    if threshold == "off":
        return False
    return ALERT_LEVELS.index(level) >= ALERT_LEVELS.index(threshold)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test in one window; ``effect`` is KS D (test "ks") or PSI (test "chi2")."""

    feature: str
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    adjusted_p: float
    effect: float
    drifted: bool
    persistent: bool
    large: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "feature": self.feature,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "adjusted_p": self.adjusted_p,
            "effect": self.effect,
            "drifted": self.drifted,
            "persistent": self.persistent,
            "large": self.large,
        }


@dataclass(frozen=True)
class DriftReport:
    """The outcome of one window: the alert level and every test behind it."""

    window_index: int
    n_rows: int
    tested: bool  # False when the window was below min_window (nothing else is filled in)
    level: AlertLevel
    features: tuple[FeatureDrift, ...] = ()
    score: FeatureDrift | None = None
    reason: str = ""

    @property
    def persistent_features(self) -> list[str]:
        """Names of the features drifting persistently in this window."""
        return [f.feature for f in self.features if f.persistent]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (e.g. the ``data`` of a ``models.drift.v1`` event)."""
        return {
            "window_index": self.window_index,
            "n_rows": self.n_rows,
            "tested": self.tested,
            "level": self.level,
            "reason": self.reason,
            "persistent_features": self.persistent_features,
            "features": [f.to_dict() for f in self.features],
            "score": None if self.score is None else self.score.to_dict(),
        }
