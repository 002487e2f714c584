"""What to simulate: the market regimes, a shift from one to another, and a run's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Final

DAY_S: Final = 86_400.0
HOUR_S: Final = 3_600.0

# Industries (values the feature code normalises: see leadscore.models.features.catalog).
INDUSTRIES: Final = (
    "software", "financial_services", "healthcare", "manufacturing", "retail", "education",
    "government", "media", "telecom", "energy", "professional_services", "other",
)  # fmt: skip


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    unknown = set(mapping) - set(INDUSTRIES)
    if unknown:
        raise ValueError(f"unknown industries {sorted(unknown)}; expected some of {INDUSTRIES}")
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Regime:
    """Who the leads are and what makes them buy, over a period of time.

    Attributes:
        industry_weights: relative share of accounts per industry (normalised; missing = 0).
        industry_fit: fit-logit shift per industry (missing = 0).
        size_fit_per_decade: fit-logit change per 10x company size (centred at 100 employees).
        email_open_factor: multiplies every email open probability (capped at 0.95).
    """

    industry_weights: Mapping[str, float]
    industry_fit: Mapping[str, float]
    size_fit_per_decade: float = 0.7
    email_open_factor: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "industry_weights", _frozen(self.industry_weights))
        object.__setattr__(self, "industry_fit", _frozen(self.industry_fit))
        if sum(self.industry_weights.values()) <= 0:
            raise ValueError("industry_weights must have a positive total")
        if self.email_open_factor < 0:
            raise ValueError(f"email_open_factor must be >= 0, got {self.email_open_factor}")


DEFAULT_REGIME: Final = Regime(
    industry_weights={
        "software": 0.22, "financial_services": 0.12, "healthcare": 0.08, "manufacturing": 0.10,
        "retail": 0.09, "education": 0.07, "government": 0.04, "media": 0.05, "telecom": 0.04,
        "energy": 0.03, "professional_services": 0.10, "other": 0.06,
    },
    industry_fit={
        "software": 0.6, "financial_services": 0.5, "healthcare": 0.2, "manufacturing": 0.1,
        "retail": 0.0, "education": -0.6, "government": -0.5, "media": -0.1, "telecom": 0.2,
        "energy": 0.1, "professional_services": 0.2, "other": -0.3,
    },
    size_fit_per_decade=0.7,
    email_open_factor=1.0,
)  # fmt: skip
"""The default market: software and finance buy, bigger companies fit better."""

SHIFTED_REGIME: Final = Regime(
    industry_weights={
        "software": 0.10, "financial_services": 0.08, "healthcare": 0.22, "manufacturing": 0.08,
        "retail": 0.16, "education": 0.12, "government": 0.03, "media": 0.04, "telecom": 0.03,
        "energy": 0.03, "professional_services": 0.07, "other": 0.04,
    },
    industry_fit={
        "software": 0.0, "financial_services": 0.2, "healthcare": 0.9, "manufacturing": 0.0,
        "retail": 0.5, "education": 0.3, "government": -0.5, "media": -0.1, "telecom": 0.0,
        "energy": 0.0, "professional_services": 0.0, "other": -0.3,
    },
    size_fit_per_decade=-0.4,
    email_open_factor=0.45,
)  # fmt: skip
"""After a (simulated) launch of a small-business tier into healthcare and retail:
a different industry mix, small companies now fit better, and a mail-client
privacy change halves the measured email open rate."""


@dataclass(frozen=True)
class Shift:
    """Switch to another regime at a point in time.

    Leads that arrive at or after ``at`` are drawn from ``regime`` (industry mix and
    what converts); every email sent at or after ``at`` uses its open factor. In
    live mode (:func:`live_events`) ``at`` is wall-clock time: each cohort generated
    from then on is entirely in the new regime.
    """

    at: datetime
    regime: Regime = SHIFTED_REGIME

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"Shift.at must be timezone-aware (UTC), got {self.at!r}")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Everything random follows from ``seed``.

    Attributes:
        n_leads: leads per run (per cohort in live mode).
        start: event time of the start of the span; ``None`` means the span ends now.
        span_days: how many days of event time the run covers.
        seed: the random seed; the same config gives the same events.
        base_conversion_rate: share of leads that *eventually* convert (before
            censoring at the end of the span; the observed share is lower).
        activity_scale: multiplies all activity rates (more or fewer events per lead).
        max_life_days: a lead with no outcome goes silent after this many days.
        run_id: the prefix of lead ids (``<run_id>-<cohort>-<n>``); event ids extend them.
        regime: the regime in force at the start.
        shift: an optional switch to another regime.
    """

    n_leads: int = 2_000
    start: datetime | None = None
    span_days: float = 30.0
    seed: int = 0
    base_conversion_rate: float = 0.15
    activity_scale: float = 1.0
    max_life_days: float = 150.0
    run_id: str = "sim"
    regime: Regime = DEFAULT_REGIME
    shift: Shift | None = None

    def __post_init__(self) -> None:
        if self.n_leads < 0:
            raise ValueError(f"n_leads must be >= 0, got {self.n_leads}")
        if self.span_days <= 0:
            raise ValueError(f"span_days must be > 0, got {self.span_days}")
        if not 0.001 <= self.base_conversion_rate <= 0.6:
            raise ValueError(
                f"base_conversion_rate must be within 0.001..0.6, got {self.base_conversion_rate}"
            )
        if self.activity_scale <= 0:
            raise ValueError(f"activity_scale must be > 0, got {self.activity_scale}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError(f"start must be timezone-aware (UTC), got {self.start!r}")
