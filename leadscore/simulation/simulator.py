"""A generative model of leads: synthetic CloudEvents traffic with a known truth per lead.

The model, in the order a lead lives it (``docs/simulator.md`` has the numbers):

1. **Arrival.** Leads arrive uniformly over ``[start, start + span_days)``. Each
   belongs to an *account* (a company) from a pool shared by about three leads,
   which fixes its industry, size, country and an account-level intent component.
2. **Who they are.** Lead source, seniority (and a job title that implies it),
   contact completeness. Not everything is known: size, industry, seniority and
   the title are each missing from the profile for some leads.
3. **Hidden state.** ``z = mu[source] + 0.5 * account_z + 0.85 * N(0, 1)`` is the
   intent logit; ``intent = sigmoid(z - 1)`` is reported as truth. The fit logit is
   a sum of firmographic effects (industry, company size, seniority, country,
   contact completeness, source) plus unobserved noise; ``fit = sigmoid(fit_logit)``.
4. **The journey.** With probability ``sigmoid(d + W0 + 1.6 z)`` a lead enters a
   *buying window* some days after arriving. Inside it, activity ramps up (``r``
   goes 0 -> 1) and the mix moves to high-intent actions: pricing/demo pages,
   demo requests, answered calls, meetings. At the end of the window the lead
   converts with probability ``sigmoid(d + C0 + fit_logit + 0.5 z)``, otherwise
   the deal is lost (and usually disqualified a few days later). Leads without a
   window drift away (interest decays) and are often disqualified for bad fit.
   ``d`` is solved so that the share of leads that eventually convert equals
   ``SimConfig.base_conversion_rate``.
5. **Activity.** Each calendar day's activity is Poisson with a rate that is the
   product of the lead's activity level, an interest envelope, a weekday factor
   and a Gamma burst factor (so activity comes in bursts), times a per-type gain
   on the window ramp. Emails follow a weekly send schedule; opens and clicks
   depend on intent and the ramp. Form submits, downloads and demo requests are
   followed up by sales calls; demo requests by meetings.
6. **Outcome.** ``lead.converted`` or ``lead.disqualified``; all activity stops
   at the outcome. Nothing after the end of the simulated span is emitted, so
   recent leads are still open (censored), as in a real CRM.

A :class:`Shift` switches to another :class:`Regime` at a time ``T``: leads
arriving from ``T`` come from a different industry mix and convert on a
different fit (small companies and healthcare win), and every email sent from
``T`` is opened at a different rate. That is covariate, behavioural and concept
drift at once, for the drift detector and the retrainer to find.
"""

from __future__ import annotations

import csv
import heapq
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import orjson

UTC: Final = UTC
DAY_S: Final = 86_400.0
HOUR_S: Final = 3_600.0

# --- vocabularies (values the feature code normalises: see leadscore.models.features.catalog) ----------

INDUSTRIES: Final = (
    "software", "financial_services", "healthcare", "manufacturing", "retail", "education",
    "government", "media", "telecom", "energy", "professional_services", "other",
)  # fmt: skip
# How industries are written in CRM records; all normalise to the key.
_INDUSTRY_LABELS: Final[dict[str, tuple[str, ...]]] = {
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
_SOURCES: Final[dict[str, tuple[float, float, float, tuple[str, ...]]]] = {
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
_SOURCE_NAMES: Final = tuple(_SOURCES)
_SOURCE_P: Final = np.array([v[0] for v in _SOURCES.values()])
_SOURCE_MU: Final = np.array([v[1] for v in _SOURCES.values()])
_SOURCE_FIT: Final = np.array([v[2] for v in _SOURCES.values()])
_INBOUND: Final = frozenset(
    {"website", "organic_search", "paid_search", "social", "email", "other"}
)
_CADENCED: Final = frozenset({"outbound", "purchased_list", "partner"})

# seniority: (share, fit logit shift, job titles that imply it)
_SENIORITIES: Final[dict[str, tuple[float, float, tuple[str, ...]]]] = {
    "c_level": (0.05, 0.3, ("CEO", "CTO", "Chief Revenue Officer", "Co-Founder", "Owner")),
    "vp": (0.07, 0.6, ("VP of Sales", "VP Marketing", "SVP Engineering", "VP Operations")),
    "director": (0.15, 0.5, ("Director of Marketing", "Head of Growth", "IT Director")),
    "manager": (0.27, 0.15, ("Marketing Manager", "Sales Manager", "Team Lead, Data")),
    "individual": (0.38, -0.3, ("Software Engineer", "Data Analyst", "Account Executive",
                                "Marketing Specialist", "Consultant")),
    "student": (0.08, -2.0, ("Student", "MBA Student", "Marketing Intern")),
}  # fmt: skip
_SENIORITY_NAMES: Final = tuple(_SENIORITIES)
_SENIORITY_P: Final = np.array([v[0] for v in _SENIORITIES.values()])
_SENIORITY_FIT: Final = np.array([v[1] for v in _SENIORITIES.values()])

# country: (share, fit logit shift, centre of the working day in UTC hours)
_COUNTRIES: Final[dict[str, tuple[float, float, float]]] = {
    "US": (0.42, 0.2, 17.0), "GB": (0.09, 0.15, 11.0), "DE": (0.08, 0.1, 10.0),
    "FR": (0.05, 0.0, 10.0), "NL": (0.03, 0.1, 10.0), "ES": (0.04, -0.1, 10.0),
    "CA": (0.05, 0.15, 17.0), "BR": (0.05, -0.3, 15.0), "IN": (0.09, -0.4, 7.0),
    "SG": (0.03, 0.1, 4.0), "AU": (0.04, 0.1, 2.0), "JP": (0.03, -0.1, 3.0),
}  # fmt: skip
_COUNTRY_NAMES: Final = tuple(_COUNTRIES)
_COUNTRY_P: Final = np.array([v[0] for v in _COUNTRIES.values()])
_COUNTRY_FIT: Final = np.array([v[1] for v in _COUNTRIES.values()])
_COUNTRY_HOUR: Final = np.array([v[2] for v in _COUNTRIES.values()])

_CONTACT_FIELDS: Final = ("email", "phone", "company", "job_title", "linkedin", "address")
# Probability each contact field is present for an average-quality record.
_CONTACT_BASE: Final = np.array([0.97, 0.5, 0.85, 0.7, 0.4, 0.25])

# --- regimes and the shift -------------------------------------------------------------------


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


# --- event codes, payload tables ------------------------------------------------------------

(_PROFILE, _PAGE, _OPEN, _CLICK, _FORM, _CONTENT, _DEMO, _CALL, _MEETING, _SOCIAL, _REFERRAL,
 _CONVERTED, _DISQUALIFIED) = range(13)  # fmt: skip
_TYPE_OF: Final = (
    "lead.profile_updated", "lead.page_viewed", "lead.email_opened", "lead.email_clicked",
    "lead.form_submitted", "lead.content_downloaded", "lead.demo_requested", "lead.call_logged",
    "lead.meeting_held", "lead.social_engaged", "lead.referral_made", "lead.converted",
    "lead.disqualified",
)  # fmt: skip
_SOURCE_OF: Final = (
    "sim/crm", "sim/web-tracker", "sim/email", "sim/email", "sim/web-tracker", "sim/web-tracker",
    "sim/web-tracker", "sim/call-center", "sim/crm", "sim/social", "sim/crm", "sim/crm", "sim/crm",
)  # fmt: skip

_GENERIC_URLS: Final = (
    "/", "/blog/what-is-lead-scoring", "/blog/intent-data-101", "/blog/sales-and-marketing",
    "/about", "/careers", "/docs/getting-started", "/customers", "/events",
)  # fmt: skip
_PRODUCT_URLS: Final = (
    "/product", "/product/real-time-scoring", "/product/explanations", "/integrations",
    "/integrations/salesforce", "/security",
)  # fmt: skip
_HIGH_INTENT_URLS: Final = (
    "/pricing", "/pricing", "/demo", "/contact", "/plans/enterprise", "/trial",
)  # fmt: skip
_WEB: Final = "https://www.example.com"

# Content: early-journey kinds first, late-journey kinds last.
_EARLY_ASSETS: Final = (
    ("state-of-lead-scoring-2026", "whitepaper"), ("ml-for-revops", "ebook"),
    ("webinar-real-time-scoring", "webinar"), ("intent-signals-guide", "ebook"),
)  # fmt: skip
_LATE_ASSETS: Final = (
    ("case-study-fintech", "case_study"), ("case-study-healthcare", "case_study"),
    ("platform-datasheet", "datasheet"), ("pricing-guide", "pricing"),
    ("security-overview", "datasheet"),
)  # fmt: skip
_PRODUCTS: Final = ("core", "analytics", "enterprise")
_NETWORKS: Final = ("linkedin", "linkedin", "linkedin", "x", "facebook", "youtube")
_SOCIAL_ACTIONS: Final = ("like", "like", "like", "comment", "share", "follow")
_LOST_REASONS: Final = ("lost_to_competitor", "no_budget", "no_decision")

# Daily activity grid: (name, base rate per day at level 1, gain at the top of the window ramp).
_GRID: Final = (
    ("session", 0.30, 2.5),
    ("form", 0.010, 4.0),
    ("content", 0.025, 2.0),
    ("demo", 0.0015, 25.0),
    ("meeting", 0.0008, 40.0),
    ("social", 0.02, 1.0),
    ("referral", 0.0005, 3.0),
    ("call", 0.006, 12.0),
)
_G_BASE: Final = np.array([g[1] for g in _GRID])
_G_GAIN: Final = np.array([g[2] for g in _GRID])

# Journey constants (logits). W0/C0 set the split between "enters a window" and
# "closes"; the calibration offset d moves both to hit the base conversion rate.
_W0: Final = -0.6
_C0: Final = -0.6
_INTENT_BIAS: Final = -1.0
_CHUNK: Final = 256

# One event, compactly: (epoch seconds, code, payload, payload); dicts are built at emission.
_Ev = tuple[Any, ...]
_CALIBRATION_LEADS: Final = 20_000


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


def _psig(x: float) -> float:
    """Scalar sigmoid in plain Python (hot path)."""
    return 1.0 / (1.0 + math.exp(-x))


# --- per-lead hidden state --------------------------------------------------------------------


@dataclass(frozen=True)
class _Accounts:
    """A pool of companies: leads of one account share firmographics and some intent."""

    industry: np.ndarray  # (P,) int index into INDUSTRIES
    log10_size: np.ndarray  # (P,) float
    country: np.ndarray  # (P,) int index into _COUNTRY_NAMES
    z: np.ndarray  # (P,) account-level intent component, N(0, 1)
    offset: int  # account numbers start here (keeps the pools of two regimes apart)

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int, regime: Regime, offset: int) -> _Accounts:
        weights = np.array([regime.industry_weights.get(name, 0.0) for name in INDUSTRIES])
        return cls(
            industry=rng.choice(len(INDUSTRIES), size, p=weights / weights.sum()),
            log10_size=np.clip(rng.normal(2.0, 0.95, size), 0.0, 5.5),
            country=rng.choice(len(_COUNTRY_NAMES), size, p=_COUNTRY_P),
            z=rng.normal(0.0, 1.0, size),
            offset=offset,
        )


@dataclass
class _Chunk:
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
    def draw(cls, rng: np.random.Generator, n: int, regime: Regime, accounts: _Accounts) -> _Chunk:
        account = rng.integers(0, len(accounts.z), n)
        source = rng.choice(len(_SOURCE_NAMES), n, p=_SOURCE_P)
        seniority = rng.choice(len(_SENIORITY_NAMES), n, p=_SENIORITY_P)
        quality = rng.random(n)
        # A better record has every field more often: p = base ** (1.5 - quality).
        contacts = rng.random((n, len(_CONTACT_FIELDS))) < _CONTACT_BASE[None, :] ** (
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


def _p_window(z: Any, offset: float) -> Any:
    return _sigmoid(offset + _W0 + 1.6 * z)


def _p_close(z: Any, fit_logit: Any, offset: float) -> Any:
    return _sigmoid(offset + _C0 + fit_logit + 0.5 * z)


def _calibrate(regime: Regime, base_rate: float) -> float:
    """The logit offset ``d`` at which ``E[p_window * p_close] == base_rate``.

    Solved by bisection on a fixed sample of 20,000 leads from ``regime`` (the
    sample's seed does not depend on the config seed, so ``d`` depends only on
    the regime and the rate). Costs ~20 ms.
    """
    rng = np.random.default_rng([20_261_126, len(INDUSTRIES)])
    accounts = _Accounts.draw(rng, _CALIBRATION_LEADS // 3, regime, 0)
    sample = _Chunk.draw(rng, _CALIBRATION_LEADS, regime, accounts)
    lo, hi = -12.0, 12.0
    for _ in range(60):
        mid = (lo + hi) / 2
        rate = float(np.mean(_p_window(sample.z, mid) * _p_close(sample.z, sample.fit_logit, mid)))
        lo, hi = (mid, hi) if rate < base_rate else (lo, mid)
    return (lo + hi) / 2


@dataclass(slots=True)
class _Lead:
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


# --- the generator --------------------------------------------------------------------------


class _Cohort:
    """Generates one cohort of leads over ``[start_t, end_t)`` and merges their events by time."""

    def __init__(
        self,
        config: SimConfig,
        *,
        cohort: int,
        start_t: float,
        end_t: float,
        run_id: str,
        shift_t: float | None,
        shift_regime: Regime | None,
        offsets: dict[int, float],
    ) -> None:
        self.config = config
        self.cohort = cohort
        self.start_t = start_t
        self.end_t = end_t
        self.run_id = run_id
        self.shift_t = shift_t
        self.regimes = (config.regime, shift_regime or config.regime)
        self.offsets = offsets
        pool = max(50, config.n_leads // 3)
        self.accounts = tuple(
            _Accounts.draw(np.random.default_rng([config.seed, 3, r]), pool, regime, r * pool)
            for r, regime in enumerate(self.regimes)
        )
        self.open_factor = tuple(regime.email_open_factor for regime in self.regimes)

    def events(self, on_lead: Callable[[LeadTruth], None] | None) -> Iterator[dict[str, Any]]:
        cfg = self.config
        n = cfg.n_leads
        times = np.sort(np.random.default_rng([cfg.seed, 1, self.cohort]).random(n))
        created = self.start_t + times * (self.end_t - self.start_t)
        split = n if self.shift_t is None else int(np.searchsorted(created, self.shift_t))
        # Chunks never straddle the shift, so a chunk is drawn from one regime.
        bounds = sorted({0, split, n} | set(range(0, n, _CHUNK)))
        heap: list[tuple[float, int, int, list[_Ev], str]] = []
        seq = 0
        for chunk_no, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if lo == hi:
                continue
            regime_no = 0 if lo < split else 1
            rng = np.random.default_rng([cfg.seed, 2, self.cohort, chunk_no])
            chunk = _Chunk.draw(rng, hi - lo, self.regimes[regime_no], self.accounts[regime_no])
            for j in range(hi - lo):
                idx = lo + j
                created_t = float(created[idx])
                # Every later lead's events are at or after its arrival: emit what precedes it.
                while heap and heap[0][0] < created_t:
                    yield self._pop(heap)
                lead = self._plan(rng, chunk, j, idx, created_t, regime_no)
                events = self._activity(random.Random(int(rng.integers(2**62))), rng, lead)
                if on_lead is not None:
                    on_lead(self._truth(lead))
                heapq.heappush(heap, (events[0][0], seq, 0, events, lead.lead_id))
                seq += 1
        while heap:
            yield self._pop(heap)

    @staticmethod
    def _pop(heap: list[tuple[float, int, int, list[_Ev], str]]) -> dict[str, Any]:
        _, seq, pos, events, lead_id = heap[0]
        if pos + 1 < len(events):
            heapq.heapreplace(heap, (events[pos + 1][0], seq, pos + 1, events, lead_id))
        else:
            heapq.heappop(heap)
        return _cloudevent(lead_id, pos, events[pos])

    def _plan(
        self,
        rng: np.random.Generator,
        c: _Chunk,
        j: int,
        idx: int,
        created_t: float,
        regime_no: int,
    ) -> _Lead:
        """Identity, profile and the journey's turning points of lead ``j`` of the chunk."""
        accounts = self.accounts[regime_no]
        acct = int(c.account[j])
        industry = INDUSTRIES[int(accounts.industry[acct])]
        size = max(1, int(10 ** float(accounts.log10_size[acct])))
        country_no = int(accounts.country[acct])
        country = _COUNTRY_NAMES[country_no]
        source = _SOURCE_NAMES[int(c.source[j])]
        seniority = _SENIORITY_NAMES[int(c.seniority[j])]
        contacts = {name: bool(v) for name, v in zip(_CONTACT_FIELDS, c.contacts[j], strict=True)}
        z = float(c.z[j])
        fit_logit = float(c.fit_logit[j])
        offset = self.offsets[regime_no]
        u = rng.random(12)

        profile: dict[str, Any] = {
            "country": country,
            "lead_source": _pick(_SOURCES[source][3], u[0]),
            "contact_fields": contacts,
        }
        titles = _SENIORITIES[seniority][2]
        if contacts["job_title"]:
            profile["job_title"] = _pick(titles, u[1])
        if u[2] < 0.5:
            profile["seniority"] = seniority
        late: dict[str, Any] = {}
        if contacts["company"]:
            profile["account_id"] = f"{self.run_id}-acct-{accounts.offset + acct}"
            (profile if u[3] < 0.8 else late)["company_size"] = size
            (profile if u[4] < 0.9 else late)["industry"] = _pick(_INDUSTRY_LABELS[industry], u[5])
        if not late and u[6] < 0.12:  # an occasional later update: new title or richer contacts
            if contacts["job_title"] and u[7] < 0.5:
                late["job_title"] = _pick(titles, u[8])
            else:
                late["contact_fields"] = contacts | {"linkedin": True, "address": True}

        window_start: float | None = None
        window_len = 0.0
        will_convert = False
        outcome: str | None = None
        outcome_t: float | None = None
        outcome_data: dict[str, Any] = {}
        if float(c.u_window[j]) < float(_p_window(z, offset)):
            window_start = created_t + DAY_S * (0.5 + rng.gamma(1.2, 5.0))
            window_len = DAY_S * (3.0 + rng.gamma(2.0, 6.0))
            decision_t = window_start + window_len
            if float(c.u_close[j]) < float(_p_close(z, fit_logit, offset)):
                will_convert = True
                outcome, outcome_t = "converted", decision_t
                deal = rng.lognormal(math.log(4_000.0 * size**0.35), 0.5)
                outcome_data = {"reason": "closed_won", "value": round(float(deal), 2)}
            elif u[10] < 0.6:
                outcome, outcome_t = "disqualified", decision_t + DAY_S * rng.exponential(4.0)
                outcome_data = {"reason": _pick(_LOST_REASONS, u[11])}
        elif float(c.u_dq[j]) < _psig(-0.8 - 0.9 * fit_logit - 0.4 * z):
            outcome, outcome_t = "disqualified", created_t + DAY_S * (0.5 + rng.gamma(2.0, 6.0))
            if seniority == "student":
                reason = "student"
            elif sum(contacts.values()) <= 2:
                reason = "invalid_contact"
            elif fit_logit < -0.5:
                reason = "bad_fit"
            else:
                reason = "no_response"
            outcome_data = {"reason": reason}
        if outcome_t is not None and outcome_t - created_t > self.config.max_life_days * DAY_S:
            outcome, outcome_t, outcome_data = None, None, {}

        return _Lead(
            lead_id=f"{self.run_id}-{self.cohort}-{idx:06d}",
            created_t=created_t,
            regime=regime_no,
            source=source,
            seniority=seniority,
            country=country,
            industry=industry,
            z=z,
            fit_logit=fit_logit,
            level=float(c.level[j]) * self.config.activity_scale,
            has_phone=contacts["phone"],
            profile=profile,
            late_profile=late or None,
            window_start=window_start,
            window_len=window_len,
            will_convert=will_convert,
            outcome=outcome,
            outcome_t=outcome_t,
            outcome_data=outcome_data,
            tau_days=float(rng.lognormal(math.log(20.0), 0.5)),
            hour=float(_COUNTRY_HOUR[country_no] + rng.normal(0.0, 1.5)),
        )

    def _truth(self, lead: _Lead) -> LeadTruth:
        seen_t = lead.outcome_t
        if seen_t is not None and seen_t >= self.end_t:
            seen_t = None  # after the end of the span: not seen yet
        outcome = lead.outcome if seen_t is not None else None
        return LeadTruth(
            lead_id=lead.lead_id,
            created_at=datetime.fromtimestamp(lead.created_t, UTC),
            intent=_psig(lead.z + _INTENT_BIAS),
            fit=_psig(lead.fit_logit),
            converted=outcome == "converted",
            outcome=outcome,
            outcome_time=datetime.fromtimestamp(seen_t, UTC) if seen_t is not None else None,
            will_convert=lead.will_convert,
            regime=lead.regime,
        )

    # --- activity ---------------------------------------------------------------------------

    def _activity(self, pr: random.Random, rng: np.random.Generator, lead: _Lead) -> list[_Ev]:
        """All events of one lead, sorted by time: ``(t, code, a, b)`` tuples (compact)."""
        c = lead.created_t
        stop = min(self.end_t, c + self.config.max_life_days * DAY_S)
        if lead.outcome_t is not None:
            stop = min(stop, lead.outcome_t)
        ws = lead.window_start
        we = ws + lead.window_len if ws is not None else math.inf
        lost = ws is not None and not lead.will_convert

        def ramp(t: float) -> float:
            if ws is None or t < ws or t >= we:
                return 0.0
            return ((t - ws) / lead.window_len) ** 1.5

        ev: list[_Ev] = [(c, _PROFILE, lead.profile, None)]
        self._arrival(pr, lead, ev)

        # Daily grid over calendar days: rates (days x types) -> Poisson counts, one numpy call.
        first_day, last_day = int(c // DAY_S), int((stop - 1e-6) // DAY_S)
        days = np.arange(first_day, last_day + 1)
        if len(days) and stop > c:
            mid = days * DAY_S + 12 * HOUR_S
            env = np.exp(-np.maximum(mid - c, 0.0) / (lead.tau_days * DAY_S)) + 0.03
            r = np.zeros(len(days))
            if ws is not None:
                inside = (mid >= ws) & (mid < we)
                r[inside] = ((mid[inside] - ws) / lead.window_len) ** 1.5
                env = np.where(inside, np.maximum(env, 0.8 + 1.5 * r), env)
                if lost:  # the deal is lost: interest collapses after the decision
                    env = np.where(mid >= we, 0.3 * np.exp(-(mid - we) / (10 * DAY_S)), env)
            weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = weekend
            factor = lead.level * env * np.where(weekday >= 5, 0.3, 1.0)
            factor = factor * rng.gamma(0.5, 2.0, len(days))  # bursts: mean 1, CV 1.4
            rates = factor[:, None] * _G_BASE[None, :] * (1.0 + r[:, None] * _G_GAIN[None, :])
            counts = rng.poisson(rates)
            for d_i, kind in zip(*np.nonzero(counts), strict=True):
                day_t = float(days[d_i]) * DAY_S
                rr = float(r[d_i])
                for _ in range(int(counts[d_i, kind])):
                    hour = (lead.hour + pr.gauss(0.0, 2.5)) % 24.0  # around the lead's working day
                    self._grid_event(pr, lead, int(kind), day_t + hour * HOUR_S, rr, ev)

        self._emails(pr, lead, c, stop, ramp, ev)
        self._follow_ups(pr, lead, ramp, ev)
        if lead.late_profile is not None and stop > c + HOUR_S:
            ev.append((pr.uniform(c + HOUR_S, stop), _PROFILE, lead.late_profile, None))

        kept = [e for e in ev if c < e[0] < stop]
        kept.sort(key=itemgetter(0))
        kept.insert(0, ev[0])
        if lead.outcome_t is not None and lead.outcome_t < self.end_t:
            code = _CONVERTED if lead.outcome == "converted" else _DISQUALIFIED
            kept.append((lead.outcome_t, code, lead.outcome_data, None))
        return kept

    def _arrival(self, pr: random.Random, lead: _Lead, ev: list[_Ev]) -> None:
        """What created the lead: a form on the site (inbound), a referral, an event."""
        t = lead.created_t + pr.uniform(1.0, 30.0)
        if lead.source in _INBOUND:
            form = pr.choices(("newsletter", "gated-content", "contact-us", "trial-signup"),
                              (0.35, 0.35, 0.15, 0.15))[0]  # fmt: skip
            t = self._session(pr, t, 0.1, lead.z, ev, pages=1 + int(pr.expovariate(0.7)))
            ev.append((t, _FORM, form, None))
            if form == "gated-content":
                ev.append((t + 2.0, _CONTENT, *pr.choice(_EARLY_ASSETS)))
        elif lead.source == "referral":
            ev.append((t, _FORM, "contact-us", None))
        elif lead.source == "event":
            ev.append((t, _FORM, "event-registration", None))
        if lead.source in _CADENCED and lead.has_phone:  # an SDR calling down a list
            for day in (0.5, 2.0, 5.0, 10.0, 20.0):
                if pr.random() < 0.6:
                    t_call = lead.created_t + day * DAY_S + pr.uniform(0.0, 6.0) * HOUR_S
                    ev.append(self._call(pr, t_call, 0.0, lead.z))

    def _grid_event(
        self, pr: random.Random, lead: _Lead, kind: int, t: float, rr: float, ev: list[_Ev]
    ) -> None:
        z = lead.z
        if kind == 0:
            self._session(pr, t, rr, z, ev, pages=1 + int(pr.expovariate(1.0 / (1.2 + 3.0 * rr))))
        elif kind == 1:
            late = pr.random() < 0.2 + 0.6 * rr
            form = (
                pr.choice(("contact-us", "trial-signup"))
                if late
                else pr.choice(("newsletter", "gated-content", "webinar-registration"))
            )
            ev.append((t, _FORM, form, None))
        elif kind == 2:
            asset = pr.choice(_LATE_ASSETS if pr.random() < 0.15 + 0.7 * rr else _EARLY_ASSETS)
            ev.append((t, _CONTENT, *asset))
        elif kind == 3:
            ev.append((t - 40.0, _PAGE, "/demo", round(pr.uniform(20, 90), 1)))
            ev.append((t, _DEMO, pr.choice(_PRODUCTS), None))
        elif kind == 4:
            ev.append((t, _MEETING, pr.choice((30, 30, 45, 60)), None))
        elif kind == 5:
            ev.append((t, _SOCIAL, pr.choice(_NETWORKS), pr.choice(_SOCIAL_ACTIONS)))
        elif kind == 6:
            ref = f"{lead.lead_id}-ref{pr.randrange(100)}" if pr.random() < 0.7 else None
            ev.append((t, _REFERRAL, ref, None))
        elif lead.has_phone:
            ev.append(self._call(pr, t, rr, z))

    @staticmethod
    def _session(
        pr: random.Random, t: float, rr: float, z: float, ev: list[_Ev], pages: int
    ) -> float:
        """A browsing session of ``pages`` page views from ``t``; returns its end time."""
        p_high = _psig(-3.2 + 0.4 * z + 3.5 * rr)
        for _ in range(pages):
            u = pr.random()
            if u < p_high:
                url, typical = pr.choice(_HIGH_INTENT_URLS), 60.0
            elif u < p_high + 0.3:
                url, typical = pr.choice(_PRODUCT_URLS), 45.0
            else:
                url, typical = pr.choice(_GENERIC_URLS), 30.0
            duration = round(min(pr.lognormvariate(math.log(typical), 0.9), 1_800.0), 1)
            ev.append((t, _PAGE, url, duration))
            t += duration + pr.expovariate(1.0 / 8.0)
        return t

    @staticmethod
    def _call(pr: random.Random, t: float, rr: float, z: float) -> _Ev:
        if pr.random() < _psig(-0.7 + 0.6 * z + 1.8 * rr):
            p_interested = _psig(-1.6 + 0.8 * z + 2.5 * rr)
            u = pr.random()
            if u < p_interested:
                outcome, typical = "interested", 420.0
            elif u < p_interested + 0.45 * (1 - p_interested):
                outcome, typical = "callback", 150.0
            elif u < 0.97:
                outcome, typical = "not_interested", 60.0
            else:
                outcome, typical = "other", 90.0
            duration = round(pr.lognormvariate(math.log(typical), 0.5), 1)
            return (t, _CALL, True, (duration, outcome))
        if pr.random() < 0.55:
            return (t, _CALL, False, (round(pr.uniform(15, 45), 1), "voicemail"))
        return (t, _CALL, False, (0.0, "no_answer"))

    def _emails(
        self,
        pr: random.Random,
        lead: _Lead,
        c: float,
        stop: float,
        ramp: Callable[[float], float],
        ev: list[_Ev],
    ) -> None:
        """Weekly newsletter/nurture sends (not events); opens and clicks are."""
        send = (int((c + pr.uniform(0.5, 7.0) * DAY_S) // DAY_S)) * DAY_S + 14 * HOUR_S
        z = lead.z
        while send < stop:
            rr = ramp(send)
            factor = self.open_factor[1 if self.shift_t is not None and send >= self.shift_t else 0]
            if pr.random() < min(0.95, _psig(-1.4 + 0.5 * z + 1.5 * rr) * factor):
                campaign = f"cmp-{int(send // (7 * DAY_S))}"
                t_open = send + pr.expovariate(1.0 / (5 * HOUR_S))
                ev.append((t_open, _OPEN, campaign, None))
                if pr.random() < 0.25:
                    ev.append((t_open + pr.expovariate(1.0 / DAY_S), _OPEN, campaign, None))
                if pr.random() < _psig(-2.2 + 0.5 * z + 1.5 * rr):
                    t_click = t_open + pr.expovariate(1.0 / 120.0)
                    high = pr.random() < 0.2 + 0.5 * rr
                    path = pr.choice(_HIGH_INTENT_URLS if high else _PRODUCT_URLS)
                    ev.append((t_click, _CLICK, campaign, f"{_WEB}{path}?utm_campaign={campaign}"))
                    seconds = round(pr.lognormvariate(math.log(50.0), 0.8), 1)
                    ev.append((t_click + 3.0, _PAGE, path, seconds))  # the landing page
            if pr.random() < 0.02:  # unsubscribed
                break
            send += 7 * DAY_S

    def _follow_ups(
        self, pr: random.Random, lead: _Lead, ramp: Callable[[float], float], ev: list[_Ev]
    ) -> None:
        """Sales reacts: calls after forms, downloads and demo requests; meetings after demos."""
        z = lead.z
        for t, code, *_ in list(ev):
            if code in (_FORM, _CONTENT) and lead.has_phone and pr.random() < 0.35:
                t_call = t + pr.expovariate(1.0 / (0.8 * DAY_S))
                ev.append(self._call(pr, t_call, ramp(t_call), z))
            elif code == _DEMO:
                if lead.has_phone and pr.random() < 0.85:
                    t_call = t + pr.expovariate(1.0 / (4 * HOUR_S))
                    ev.append(self._call(pr, t_call, ramp(t_call), z))
                if pr.random() < 0.3 + 0.6 * ramp(t):
                    t_meeting = t + pr.uniform(1.0, 6.0) * DAY_S
                    ev.append((t_meeting, _MEETING, pr.choice((30, 45, 60)), None))


def _pick(options: tuple[Any, ...], u: float) -> Any:
    return options[min(int(u * len(options)), len(options) - 1)]


# --- event dicts ----------------------------------------------------------------------------

_DAY_PREFIX: dict[int, str] = {}


def _iso(t: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (truncated to the millisecond; fast)."""
    ms_total = int(t * 1000.0)
    seconds, ms = divmod(ms_total, 1000)
    day, seconds = divmod(seconds, 86_400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
        if len(_DAY_PREFIX) < 100_000:
            _DAY_PREFIX[day] = prefix
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


def _cloudevent(lead_id: str, pos: int, event: _Ev) -> dict[str, Any]:
    t, code, a, b = event
    if code == _PAGE:
        data: dict[str, Any] = {"url": a, "duration_s": b}
    elif code == _OPEN:
        data = {"campaign_id": a}
    elif code == _CLICK:
        data = {"campaign_id": a, "url": b}
    elif code == _FORM:
        data = {"form_id": a}
    elif code == _CONTENT:
        data = {"asset": a, "kind": b}
    elif code == _DEMO:
        data = {"product": a}
    elif code == _CALL:
        data = {"answered": a, "duration_s": b[0], "outcome": b[1]}
    elif code == _MEETING:
        data = {"duration_min": a}
    elif code == _SOCIAL:
        data = {"network": a, "action": b}
    elif code == _REFERRAL:
        data = {"referred_lead_id": a} if a is not None else {}
    else:  # profile, converted, disqualified: the data dict is stored as is
        data = a
    return {
        "specversion": "1.0",
        "id": f"{lead_id}.{pos}",
        "source": _SOURCE_OF[code],
        "type": _TYPE_OF[code],
        "time": _iso(t),
        "subject": lead_id,
        "datacontenttype": "application/json",
        "data": data,
    }


# --- public entry points --------------------------------------------------------------------


class Simulator:
    """Holds the calibration for a config; produces batch runs and live cohorts.

    Args:
        config: what to simulate.

    Examples:
        >>> from datetime import UTC, datetime
        >>> sim = Simulator(SimConfig(n_leads=5, start=datetime(2026, 1, 5, tzinfo=UTC)))
        >>> first = next(sim.events())
        >>> first["type"], first["time"] < "2026-02-04"
        ('lead.profile_updated', True)
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._offsets = {0: _calibrate(config.regime, config.base_conversion_rate)}
        if config.shift is not None:
            self._offsets[1] = _calibrate(config.shift.regime, config.base_conversion_rate)

    def events(
        self,
        *,
        on_lead: Callable[[LeadTruth], None] | None = None,
        now: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The events of the whole run, in event-time order.

        Args:
            on_lead: called with each lead's truth when the lead is generated (in
                arrival order, before any of its events is yielded).
            now: the wall-clock time the span ends at when ``config.start`` is
                ``None`` (default: the current time).

        Yields:
            CloudEvents dicts (structured JSON mode), ready for ``orjson.dumps``.
        """
        cfg = self.config
        if cfg.start is not None:
            start_t = cfg.start.timestamp()
        else:
            start_t = (now.timestamp() if now is not None else time.time()) - cfg.span_days * DAY_S
        end_t = start_t + cfg.span_days * DAY_S
        return self._cohort(0, start_t, end_t, cfg.run_id, cfg.shift, on_lead)

    def live_events(
        self,
        *,
        on_lead: Callable[[LeadTruth], None] | None = None,
        clock: Callable[[], float] = time.time,
        cohorts: int | None = None,
        run_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Cohort after cohort of leads whose histories end at the wall-clock time.

        Cohort ``k`` is generated when the previous one is exhausted, over
        ``[clock() - span_days, clock())``, with lead ids ``<run_id>-<k>-<n>``, so no
        event time is ever ahead of the wall clock. Event time restarts (goes back
        by ``span_days``) at each cohort, but each lead's events are in order.

        Args:
            on_lead: called with each lead's truth when the lead is generated.
            clock: epoch seconds now; injectable for tests.
            cohorts: stop after this many cohorts (default: never).
            run_id: the lead id prefix; default ``<config.run_id>-<start time, base 16>``,
                so two runs never reuse lead or event ids.

        Yields:
            CloudEvents dicts, in event-time order within each cohort.
        """
        cfg = self.config
        run = run_id or f"{cfg.run_id}-{int(clock()):x}"
        k = 0
        while cohorts is None or k < cohorts:
            now_t = clock()
            start_t = now_t - cfg.span_days * DAY_S
            shift = cfg.shift
            if shift is not None:  # wall-clock semantics: the whole cohort after T is shifted
                shifted = now_t >= shift.at.timestamp()
                at_t = start_t if shifted else now_t + 1.0
                shift = replace(shift, at=datetime.fromtimestamp(at_t, UTC))
            yield from self._cohort(k, start_t, now_t, run, shift, on_lead)
            k += 1

    def _cohort(
        self,
        cohort: int,
        start_t: float,
        end_t: float,
        run_id: str,
        shift: Shift | None,
        on_lead: Callable[[LeadTruth], None] | None,
    ) -> Iterator[dict[str, Any]]:
        gen = _Cohort(
            self.config,
            cohort=cohort,
            start_t=start_t,
            end_t=end_t,
            run_id=run_id,
            shift_t=shift.at.timestamp() if shift is not None else None,
            shift_regime=shift.regime if shift is not None else None,
            offsets=self._offsets,
        )
        return gen.events(on_lead)


def simulate(
    config: SimConfig,
    *,
    on_lead: Callable[[LeadTruth], None] | None = None,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of a batch run in event-time order; see :meth:`Simulator.events`."""
    return Simulator(config).events(on_lead=on_lead, now=now)


def live_events(
    config: SimConfig,
    *,
    on_lead: Callable[[LeadTruth], None] | None = None,
    clock: Callable[[], float] = time.time,
    cohorts: int | None = None,
    run_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Unbounded live traffic, never ahead of the wall clock; see :meth:`Simulator.live_events`."""
    sim = Simulator(config)
    return sim.live_events(on_lead=on_lead, clock=clock, cohorts=cohorts, run_id=run_id)


def simulate_with_truth(
    config: SimConfig, *, now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[LeadTruth]]:
    """A whole (small) run in memory: the events in time order and the truth per lead."""
    truth: list[LeadTruth] = []
    events = list(simulate(config, on_lead=truth.append, now=now))
    return events, truth


# --- files ----------------------------------------------------------------------------------

TRUTH_COLUMNS: Final = (
    "lead_id", "intent", "fit", "converted", "outcome", "outcome_time", "created_time",
    "will_convert", "regime",
)  # fmt: skip


def _iso_or_empty(value: datetime | None) -> str:
    return "" if value is None else _iso(value.timestamp())


def truth_row(truth: LeadTruth) -> list[str]:
    """One CSV row for :data:`TRUTH_COLUMNS` (booleans as 0/1, times as ISO-8601 ``Z``)."""
    return [
        truth.lead_id,
        f"{truth.intent:.6f}",
        f"{truth.fit:.6f}",
        str(int(truth.converted)),
        truth.outcome or "",
        _iso_or_empty(truth.outcome_time),
        _iso_or_empty(truth.created_at),
        str(int(truth.will_convert)),
        str(truth.regime),
    ]


def write_jsonl(events: Iterable[Mapping[str, Any]], path: Path | str) -> int:
    """Write events as JSON lines (one CloudEvent per line). Returns the number written."""
    n = 0
    with open(path, "wb") as out:
        for event in events:
            out.write(orjson.dumps(event))
            out.write(b"\n")
            n += 1
    return n


def write_truth_csv(truth: Iterable[LeadTruth], path: Path | str) -> int:
    """Write the truth per lead as CSV with a header (:data:`TRUTH_COLUMNS`); returns the rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(TRUTH_COLUMNS)
        for row in truth:
            writer.writerow(truth_row(row))
            n += 1
    return n


def write_labeled_files(
    config: SimConfig,
    events_path: Path | str,
    truth_path: Path | str | None = None,
    *,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Simulate a batch run straight to a JSON-lines file and its truth CSV, streaming both.

    Returns:
        ``(events written, leads written)``.
    """
    if truth_path is None:
        return write_jsonl(simulate(config, now=now), events_path), config.n_leads
    with open(truth_path, "w", newline="", encoding="utf-8") as truth_file:
        writer = csv.writer(truth_file)
        writer.writerow(TRUTH_COLUMNS)
        n_events = write_jsonl(
            simulate(config, on_lead=lambda t: writer.writerow(truth_row(t)), now=now), events_path
        )
    return n_events, config.n_leads


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """Read a JSON-lines event file back (skipping blank lines)."""
    with open(path, "rb") as src:
        for line in src:
            if line.strip():
                yield orjson.loads(line)


# --- learnability: point-in-time snapshots and a plain classifier ----------------------------


def snapshot_dataset(
    events: Iterable[Mapping[str, Any]],
    truth: Iterable[LeadTruth],
    *,
    end: datetime,
    horizon_days: float = 30.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One point-in-time feature vector per lead, labelled "converts within the horizon".

    For each lead, pick one of its activity events before its outcome uniformly
    at random (as the stream would score at every event), apply the lead's events
    up to it to a fresh :class:`~leadscore.models.features.state.LeadState`, and take the
    vector. The label is 1 when the lead converts within ``horizon_days`` after that
    moment. Leads whose horizon reaches past ``end`` without an outcome are skipped
    (their label is not known yet), as are leads with no activity before the outcome.

    Returns:
        ``(X, y, lead_ids)``: an ``(n, N_FEATURES)`` matrix, 0/1 labels and the leads.
    """
    from leadscore.models.features.state import LeadState, apply_event
    from leadscore.models.features.vector import N_FEATURES, to_vector
    from leadscore.schemas.events import ACTIVITY_TYPES, lead_event_adapter

    by_lead: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        by_lead.setdefault(event["subject"], []).append(event)
    rng = np.random.default_rng(seed)
    end_t = end.timestamp()
    horizon_s = horizon_days * DAY_S
    rows: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    for lead in truth:
        lead_events = by_lead.get(lead.lead_id, [])
        outcome_iso = _iso_or_empty(lead.outcome_time) or "~"  # "~" sorts after every time
        candidates = [
            i
            for i, e in enumerate(lead_events)
            if e["type"] in ACTIVITY_TYPES and e["time"] < outcome_iso
        ]
        if not candidates:
            continue
        pick = candidates[int(rng.integers(len(candidates)))]
        state = LeadState(lead.lead_id)
        for e in lead_events[: pick + 1]:
            apply_event(state, lead_event_adapter.validate_python(e))
        snap_t = state.last_event_t or 0.0
        if lead.converted and lead.outcome_time is not None:
            label = int(lead.outcome_time.timestamp() - snap_t <= horizon_s)
        elif snap_t + horizon_s > end_t and lead.outcome is None:
            continue  # censored: we cannot know yet
        else:
            label = 0
        rows.append(to_vector(state))
        labels.append(label)
        ids.append(lead.lead_id)
    x = np.vstack(rows) if rows else np.zeros((0, N_FEATURES))
    return x, np.array(labels, dtype=np.int64), ids


def measure_learnability(
    config: SimConfig, *, horizon_days: float = 30.0, test_fraction: float = 0.3, seed: int = 0
) -> dict[str, float]:
    """Simulate, snapshot, fit plain classifiers, and report held-out ROC-AUC.

    Fits scikit-learn's ``HistGradientBoostingClassifier`` (defaults) and a
    ``LogisticRegression`` on ``log1p`` features, on a random split by lead.

    Returns:
        ``leads``, ``events``, ``conversion_rate`` (observed within the span),
        ``snapshots``, ``positive_rate``, ``auc_hgb``, ``auc_logreg``, ``seconds``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    started = time.perf_counter()
    if config.start is None:
        raise ValueError("measure_learnability needs config.start (a fixed, reproducible span)")
    events, truth = simulate_with_truth(config)
    end = datetime.fromtimestamp(config.start.timestamp() + config.span_days * DAY_S, UTC)
    x, y, _ = snapshot_dataset(events, truth, end=end, horizon_days=horizon_days, seed=seed)
    rng = np.random.default_rng(seed)
    test = rng.random(len(y)) < test_fraction
    hgb = HistGradientBoostingClassifier(random_state=seed).fit(x[~test], y[~test])
    logreg = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=2_000)
    ).fit(x[~test], y[~test])
    return {
        "leads": float(len(truth)),
        "events": float(len(events)),
        "conversion_rate": float(np.mean([t.converted for t in truth])),
        "snapshots": float(len(y)),
        "positive_rate": float(y.mean()),
        "auc_hgb": float(roc_auc_score(y[test], hgb.predict_proba(x[test])[:, 1])),
        "auc_logreg": float(roc_auc_score(y[test], logreg.predict_proba(x[test])[:, 1])),
        "seconds": time.perf_counter() - started,
    }


if __name__ == "__main__":  # python -m leadscore.simulation.simulator --leads 5000 --seed 7
    import argparse

    parser = argparse.ArgumentParser(description="Measure how learnable the simulated signal is.")
    parser.add_argument("--leads", type=int, default=5_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=0.15, help="base conversion rate")
    args = parser.parse_args()
    report = measure_learnability(
        SimConfig(
            n_leads=args.leads,
            start=datetime(2026, 1, 5, tzinfo=UTC),
            span_days=args.days,
            seed=args.seed,
            base_conversion_rate=args.rate,
        ),
        seed=args.seed,
    )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
