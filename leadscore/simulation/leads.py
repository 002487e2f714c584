"""Who the simulated leads are: profile vocabularies, accounts, hidden intent and fit, the truth.

A lead belongs to an account (a company) that fixes its industry, size and country; its
source, seniority and contact completeness are drawn per lead. Its hidden intent and fit
(logits) decide its journey (planned in :mod:`~leadscore.simulation.cohort`, acted out in
:mod:`~leadscore.simulation.activity`) and are reported as :class:`LeadTruth`, what a model
must guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np

from leadscore.simulation.config import INDUSTRIES, Regime

# --- vocabularies (values the feature code normalises: see leadscore.models.features.catalog) ----------

# How industries are written in CRM records; all normalise to the key.
INDUSTRY_LABELS: Final[dict[str, tuple[str, ...]]] = {
    "software": ("Software", "SaaS", "Technology"),
    "financial_services": ("Financial Services", "Banking", "Insurance"),
    "healthcare": ("Healthcare", "Pharma", "Life Sciences"),
    "manufacturing": ("Manufacturing",),
    "retail": ("Retail", "eCommerce"),
    "education": ("Education", "Higher Education"),
    "government": ("Government", "Public Sector"),
    "media": ("Media",),
    "telecom": ("Telecom", "Telecommunications"),
    "energy": ("Energy", "Utilities"),
    "professional_services": ("Professional Services", "Consulting", "Legal"),
    "other": ("Hospitality", "Agriculture", "Non-profit"),
}

# source: (share of leads, intent logit shift, fit logit shift, labels as written in the CRM)
SOURCES: Final[dict[str, tuple[float, float, float, tuple[str, ...]]]] = {
    "website": (0.18, 0.2, 0.0, ("website",)),
    "organic_search": (0.14, 0.1, 0.0, ("organic_search", "SEO")),
    "paid_search": (0.13, -0.1, 0.0, ("paid_search", "PPC")),
    "social": (0.08, -0.3, -0.1, ("social",)),
    "email": (0.06, 0.0, 0.0, ("email",)),
    "referral": (0.05, 0.8, 0.3, ("referral",)),
    "event": (0.08, 0.3, 0.1, ("event", "Webinar", "Trade Show")),
    "partner": (0.05, 0.4, 0.2, ("partner",)),
    "outbound": (0.12, -0.7, 0.1, ("outbound",)),
    "purchased_list": (0.08, -1.0, -0.2, ("purchased_list",)),
    "other": (0.03, -0.2, 0.0, ("other",)),
}
SOURCE_NAMES: Final = tuple(SOURCES)
_SOURCE_P: Final = np.array([v[0] for v in SOURCES.values()])
_SOURCE_MU: Final = np.array([v[1] for v in SOURCES.values()])
_SOURCE_FIT: Final = np.array([v[2] for v in SOURCES.values()])
INBOUND: Final = frozenset({"website", "organic_search", "paid_search", "social", "email", "other"})
CADENCED: Final = frozenset({"outbound", "purchased_list", "partner"})

# seniority: (share, fit logit shift, job titles that imply it)
SENIORITIES: Final[dict[str, tuple[float, float, tuple[str, ...]]]] = {
    "c_level": (0.05, 0.3, ("CEO", "CTO", "Chief Revenue Officer", "Co-Founder", "Owner")),
    "vp": (0.07, 0.6, ("VP of Sales", "VP Marketing", "SVP Engineering", "VP Operations")),
    "director": (0.15, 0.5, ("Director of Marketing", "Head of Growth", "IT Director")),
    "manager": (0.27, 0.15, ("Marketing Manager", "Sales Manager", "Team Lead, Data")),
    "individual": (0.38, -0.3, ("Software Engineer", "Data Analyst", "Account Executive",
                                "Marketing Specialist", "Consultant")),
    "student": (0.08, -2.0, ("Student", "MBA Student", "Marketing Intern")),
}  # fmt: skip
SENIORITY_NAMES: Final = tuple(SENIORITIES)
_SENIORITY_P: Final = np.array([v[0] for v in SENIORITIES.values()])
_SENIORITY_FIT: Final = np.array([v[1] for v in SENIORITIES.values()])

# country: (share, fit logit shift, centre of the working day in UTC hours)
_COUNTRIES: Final[dict[str, tuple[float, float, float]]] = {
    "US": (0.42, 0.2, 17.0), "GB": (0.09, 0.15, 11.0), "DE": (0.08, 0.1, 10.0),
    "FR": (0.05, 0.0, 10.0), "NL": (0.03, 0.1, 10.0), "ES": (0.04, -0.1, 10.0),
    "CA": (0.05, 0.15, 17.0), "BR": (0.05, -0.3, 15.0), "IN": (0.09, -0.4, 7.0),
    "SG": (0.03, 0.1, 4.0), "AU": (0.04, 0.1, 2.0), "JP": (0.03, -0.1, 3.0),
}  # fmt: skip
COUNTRY_NAMES: Final = tuple(_COUNTRIES)
_COUNTRY_P: Final = np.array([v[0] for v in _COUNTRIES.values()])
_COUNTRY_FIT: Final = np.array([v[1] for v in _COUNTRIES.values()])
COUNTRY_HOUR: Final = np.array([v[2] for v in _COUNTRIES.values()])

CONTACT_FIELDS: Final = ("email", "phone", "company", "job_title", "linkedin", "address")
# Probability each contact field is present for an average-quality record.
_CONTACT_BASE: Final = np.array([0.97, 0.5, 0.85, 0.7, 0.4, 0.25])


@dataclass(frozen=True, slots=True)
class LeadTruth:
    """What the simulator knows about a lead and a model must guess.

    Attributes:
        lead_id: the lead (the events' ``subject``).
        created_at: when the lead arrived (its first event, the profile).
        intent: hidden buying intent in (0, 1).
        fit: hidden fit in (0, 1) under the lead's regime.
        converted: a ``lead.converted`` event was emitted (within the span).
        outcome: ``"converted"``, ``"disqualified"`` or ``None`` (still open at the end).
        outcome_time: event time of the outcome, if any.
        will_convert: the lead converts eventually, even if after the end of the span.
        regime: 0 for the starting regime, 1 after the shift.
    """

    lead_id: str
    created_at: datetime
    intent: float
    fit: float
    converted: bool
    outcome: str | None
    outcome_time: datetime | None
    will_convert: bool
    regime: int


# Journey constants (logits). W0/C0 set the split between "enters a window" and
# "closes"; the calibration offset d moves both to hit the base conversion rate.
_W0: Final = -0.6
_C0: Final = -0.6
_CALIBRATION_LEADS: Final = 20_000


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


def psig(x: float) -> float:
    """Scalar sigmoid in plain Python (hot path)."""
    return 1.0 / (1.0 + math.exp(-x))


# --- per-lead hidden state --------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """A pool of companies: leads of one account share firmographics and some intent."""

    industry: np.ndarray  # (P,) int index into INDUSTRIES
    log10_size: np.ndarray  # (P,) float
    country: np.ndarray  # (P,) int index into COUNTRY_NAMES
    z: np.ndarray  # (P,) account-level intent component, N(0, 1)
    offset: int  # account numbers start here (keeps the pools of two regimes apart)

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int, regime: Regime, offset: int) -> Accounts:
        weights = np.array([regime.industry_weights.get(name, 0.0) for name in INDUSTRIES])
        return cls(
            industry=rng.choice(len(INDUSTRIES), size, p=weights / weights.sum()),
            log10_size=np.clip(rng.normal(2.0, 0.95, size), 0.0, 5.5),
            country=rng.choice(len(COUNTRY_NAMES), size, p=_COUNTRY_P),
            z=rng.normal(0.0, 1.0, size),
            offset=offset,
        )


@dataclass
class Chunk:
    """Per-lead draws for a chunk of leads (arrays of length n), before the journey."""

    account: np.ndarray
    source: np.ndarray
    seniority: np.ndarray
    contacts: np.ndarray  # (n, 6) bool
    z: np.ndarray
    fit_logit: np.ndarray
    level: np.ndarray
    u_window: np.ndarray
    u_close: np.ndarray
    u_dq: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, regime: Regime, accounts: Accounts) -> Chunk:
        account = rng.integers(0, len(accounts.z), n)
        source = rng.choice(len(SOURCE_NAMES), n, p=_SOURCE_P)
        seniority = rng.choice(len(SENIORITY_NAMES), n, p=_SENIORITY_P)
        quality = rng.random(n)
        # A better record has every field more often: p = base ** (1.5 - quality).
        contacts = rng.random((n, len(CONTACT_FIELDS))) < _CONTACT_BASE[None, :] ** (
            1.5 - quality[:, None]
        )
        industry = accounts.industry[account]
        industry_fit = np.array([regime.industry_fit.get(name, 0.0) for name in INDUSTRIES])
        z = _SOURCE_MU[source] + 0.5 * accounts.z[account] + 0.85 * rng.normal(0.0, 1.0, n)
        fit_logit = (
            industry_fit[industry]
            + regime.size_fit_per_decade * (accounts.log10_size[account] - 2.0)
            + _SENIORITY_FIT[seniority]
            + _COUNTRY_FIT[accounts.country[account]]
            + 1.0 * (contacts.mean(axis=1) - 0.6)
            + _SOURCE_FIT[source]
            + 0.35 * rng.normal(0.0, 1.0, n)  # what a model cannot see
        )
        return cls(
            account=account,
            source=source,
            seniority=seniority,
            contacts=contacts,
            z=z,
            fit_logit=fit_logit,
            level=np.exp(0.7 * z + 0.4 * rng.normal(0.0, 1.0, n)),
            u_window=rng.random(n),
            u_close=rng.random(n),
            u_dq=rng.random(n),
        )


def p_window(z: Any, offset: float) -> Any:
    """The probability that a lead of intent logit ``z`` enters a buying window."""
    return _sigmoid(offset + _W0 + 1.6 * z)


def p_close(z: Any, fit_logit: Any, offset: float) -> Any:
    """The probability that a lead in a buying window converts at its end."""
    return _sigmoid(offset + _C0 + fit_logit + 0.5 * z)


def calibrate(regime: Regime, base_rate: float) -> float:
    """The logit offset ``d`` at which ``E[p_window * p_close] == base_rate``.

    Solved by bisection on a fixed sample of 20,000 leads from ``regime`` (the
    sample's seed does not depend on the config seed, so ``d`` depends only on
    the regime and the rate). Costs ~20 ms.
    """
    rng = np.random.default_rng([20_261_126, len(INDUSTRIES)])
    accounts = Accounts.draw(rng, _CALIBRATION_LEADS // 3, regime, 0)
    sample = Chunk.draw(rng, _CALIBRATION_LEADS, regime, accounts)
    lo, hi = -12.0, 12.0
    for _ in range(60):
        mid = (lo + hi) / 2
        rate = float(np.mean(p_window(sample.z, mid) * p_close(sample.z, sample.fit_logit, mid)))
        lo, hi = (mid, hi) if rate < base_rate else (lo, mid)
    return (lo + hi) / 2


@dataclass(slots=True)
class Lead:
    """One lead's identity, hidden state and journey plan (times in epoch seconds)."""

    lead_id: str
    created_t: float
    regime: int
    source: str
    seniority: str
    country: str
    industry: str
    z: float
    fit_logit: float
    level: float
    has_phone: bool
    profile: dict[str, Any]
    late_profile: dict[str, Any] | None
    window_start: float | None
    window_len: float
    will_convert: bool
    outcome: str | None  # planned outcome (may fall after the end of the span)
    outcome_t: float | None
    outcome_data: dict[str, Any]
    tau_days: float
    hour: float
