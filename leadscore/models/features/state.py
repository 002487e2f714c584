"""Per-lead feature state, updated in event time, and the feature vector built from it.

This is the one definition of the feature vector: the stream, the API and batch
scoring all build vectors here, so a lead gets the same score whichever way it
is asked.

Everything is computed in *event time*: the state depends only on the events
applied (their ``time`` fields), never on the wall clock, so a replay gives the
same state. The updates are also order-independent (sums, min/max, decayed sums
with a moving reference time, capped sets that keep the largest elements), so
events that arrive out of order give the same vector as the same events in order,
to floating-point rounding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Final

import numpy as np

from leadscore.schemas.events import ACTIVITY_TYPES, OUTCOME_TYPES

#: Version of the feature definition; saved with every model so a mismatch is caught at load.
FEATURE_SPEC_VERSION: Final = 1

DAY_S: Final = 86_400.0
#: Half-life of the decayed ("recent") counts.
HALF_LIFE_S: Final = 7 * DAY_S
_DECAY_PER_S: Final = math.log(2) / HALF_LIFE_S
#: Active days remembered per lead (the most recent ones).
MAX_ACTIVE_DAYS: Final = 64
#: Distinct content assets remembered per lead.
MAX_ASSETS: Final = 128

# Which activity types feed which factor family's decayed count.
FAMILY_OF_TYPE: Final[dict[str, str]] = {
    "lead.page_viewed": "behavioral",
    "lead.email_opened": "behavioral",
    "lead.email_clicked": "behavioral",
    "lead.call_logged": "engagement",
    "lead.meeting_held": "engagement",
    "lead.demo_requested": "engagement",
    "lead.form_submitted": "engagement",
    "lead.content_downloaded": "content",
    "lead.social_engaged": "interaction",
    "lead.referral_made": "interaction",
}
FAMILIES: Final = ("behavioral", "engagement", "content", "interaction")
if set(FAMILY_OF_TYPE) != ACTIVITY_TYPES:  # pragma: no cover - a programming error
    raise RuntimeError("every activity type needs a factor family")

_HIGH_INTENT_URL = re.compile(r"pricing|demo|contact|trial|quote|buy|plans", re.IGNORECASE)

INDUSTRIES: Final = (
    "software",
    "financial_services",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "government",
    "media",
    "telecom",
    "energy",
    "professional_services",
    "other",
)
_INDUSTRY_ALIASES: Final[dict[str, str]] = {
    "saas": "software",
    "it": "software",
    "technology": "software",
    "tech": "software",
    "information_technology": "software",
    "finance": "financial_services",
    "banking": "financial_services",
    "insurance": "financial_services",
    "fintech": "financial_services",
    "health": "healthcare",
    "pharma": "healthcare",
    "life_sciences": "healthcare",
    "ecommerce": "retail",
    "e-commerce": "retail",
    "consumer_goods": "retail",
    "higher_education": "education",
    "public_sector": "government",
    "telecommunications": "telecom",
    "utilities": "energy",
    "consulting": "professional_services",
    "legal": "professional_services",
    "accounting": "professional_services",
}

LEAD_SOURCES: Final = (
    "website",
    "organic_search",
    "paid_search",
    "social",
    "email",
    "referral",
    "event",
    "partner",
    "outbound",
    "purchased_list",
    "other",
)
_SOURCE_ALIASES: Final[dict[str, str]] = {
    "web": "website",
    "organic": "organic_search",
    "seo": "organic_search",
    "ppc": "paid_search",
    "paid": "paid_search",
    "ads": "paid_search",
    "webinar": "event",
    "trade_show": "event",
    "conference": "event",
    "cold_call": "outbound",
    "cold_email": "outbound",
    "list": "purchased_list",
}
# Aliases are looked up by the same key as the input ("e-commerce" -> "e_commerce").
_INDUSTRY_ALIASES = {re.sub(r"[\s/&-]+", "_", k): v for k, v in _INDUSTRY_ALIASES.items()}  # type: ignore[misc]
_SOURCE_ALIASES = {re.sub(r"[\s/&-]+", "_", k): v for k, v in _SOURCE_ALIASES.items()}  # type: ignore[misc]

#: 0 means unknown.
SENIORITY_RANK: Final[dict[str, int]] = {
    "student": 1,
    "individual": 2,
    "manager": 3,
    "director": 4,
    "vp": 5,
    "c_level": 6,
}
_TITLE_RULES: Final = (
    (re.compile(r"\b(chief|ceo|cto|cfo|coo|cmo|cio|founder|owner|president)\b", re.I), "c_level"),
    (re.compile(r"\b(vp|svp|evp|vice president)\b", re.I), "vp"),
    (re.compile(r"\b(director|head of)\b", re.I), "director"),
    (re.compile(r"\b(manager|lead|supervisor)\b", re.I), "manager"),
    (re.compile(r"\b(student|intern)\b", re.I), "student"),
)
CONTACT_FIELDS: Final = ("email", "phone", "company", "job_title", "linkedin", "address")
# Responsive actions (the lead acted) over all touches: the interaction rate.
_RESPONSIVE_TYPES: Final = frozenset(
    {"lead.email_clicked", "lead.form_submitted", "lead.demo_requested", "lead.meeting_held"}
)


@dataclass(slots=True)
class LeadState:
    """Everything the worker remembers about one lead. JSON-serializable via :meth:`to_dict`.

    Times are UTC epoch seconds (event time). ``first_event_t``/``last_event_t`` span
    the activity and profile events (never outcomes): the feature vector is valued as
    of ``last_event_t``. ``decayed`` holds each family's exponentially decayed count
    valued at ``decay_ref_t``.
    """

    lead_id: str
    first_event_t: float | None = None
    last_event_t: float | None = None
    first_activity_t: float | None = None
    last_activity_t: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    page_seconds: float = 0.0
    high_intent_views: int = 0
    calls_answered: int = 0
    call_seconds: float = 0.0
    decayed: dict[str, float] = field(default_factory=dict)
    decay_ref_t: float | None = None
    assets: list[str] = field(default_factory=list)
    active_days: list[int] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    profile_t: dict[str, float] = field(default_factory=dict)
    outcome: str | None = None
    outcome_t: float | None = None
    seen_ids: list[str] = field(default_factory=list)
    # Scoring memory: the last published score, for change detection and idempotent re-emission.
    score: int | None = None
    grade: str | None = None
    prev_score: int | None = None
    prev_grade: str | None = None
    score_cause_id: str | None = None
    model_version: str | None = None
    # The last published score event (JSON-ready): a replay of its cause re-publishes it
    # exactly, whatever happened to the state or the model since.
    last_score_event: dict[str, Any] | None = None
    # Every non-negligible contribution (points) of the last published score: the next
    # score says what moved since.
    last_points: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeadState:
        return cls(**data)

    @property
    def activity_count(self) -> int:
        return sum(self.counts.get(t, 0) for t in ACTIVITY_TYPES)


def apply_event(state: LeadState, event: Any, *, dedupe_window: int = 256) -> bool:
    """Apply one validated event to ``state`` in event time.

    Args:
        state: the lead's state; changed in place.
        event: a validated event from :mod:`leadscore.schemas.events` for this lead.
        dedupe_window: how many recent event ids to remember for dropping repeats.

    Returns:
        ``False`` if the event id was already applied (nothing changed), else ``True``.
    """
    if event.id in state.seen_ids:
        return False
    state.seen_ids.append(event.id)
    if len(state.seen_ids) > dedupe_window:
        del state.seen_ids[: len(state.seen_ids) - dedupe_window]

    t = event.time.timestamp()
    etype = event.type
    if etype not in OUTCOME_TYPES:
        # Feature time: the vector is valued as of the last activity or profile event. An
        # outcome must not move it, or the score would depend on the label's arrival.
        state.first_event_t = t if state.first_event_t is None else min(state.first_event_t, t)
        state.last_event_t = t if state.last_event_t is None else max(state.last_event_t, t)
    if etype in FAMILY_OF_TYPE:
        _apply_activity(state, etype, event.data, t)
    elif etype in OUTCOME_TYPES:
        # Kept for the training set; never a feature (that would leak the label).
        if state.outcome_t is None or t >= state.outcome_t:
            state.outcome = etype.removeprefix("lead.")
            state.outcome_t = t
    else:
        _apply_profile(state, event.data, t)
    return True


def _apply_activity(state: LeadState, etype: str, data: Any, t: float) -> None:
    state.counts[etype] = state.counts.get(etype, 0) + 1
    state.first_activity_t = t if state.first_activity_t is None else min(state.first_activity_t, t)
    state.last_activity_t = t if state.last_activity_t is None else max(state.last_activity_t, t)
    _add_decayed(state, FAMILY_OF_TYPE[etype], t)
    _keep_largest(state.active_days, int(t // DAY_S), MAX_ACTIVE_DAYS)
    if etype == "lead.page_viewed":
        state.page_seconds += data.duration_s
        if _HIGH_INTENT_URL.search(data.url):
            state.high_intent_views += 1
    elif etype == "lead.call_logged":
        state.call_seconds += data.duration_s
        state.calls_answered += int(data.answered)
    elif etype == "lead.content_downloaded":
        digest = blake2b(data.asset.encode(), digest_size=8).hexdigest()
        _keep_largest(state.assets, digest, MAX_ASSETS)


def _add_decayed(state: LeadState, family: str, t: float) -> None:
    """Add one event at time ``t`` to the decayed count of ``family``.

    Values are kept at the reference time ``decay_ref_t`` (the latest activity
    time). An earlier event adds its weight decayed to the reference; a later
    one moves the reference forward, decaying everything first.
    """
    ref = state.decay_ref_t
    if ref is None or t >= ref:
        if ref is not None and t > ref:
            factor = math.exp(-_DECAY_PER_S * (t - ref))
            for name in state.decayed:
                state.decayed[name] *= factor
        state.decay_ref_t = t
        weight = 1.0
    else:
        weight = math.exp(-_DECAY_PER_S * (ref - t))
    state.decayed[family] = state.decayed.get(family, 0.0) + weight


def _keep_largest(items: list[Any], value: Any, cap: int) -> None:
    """Insert ``value`` into the sorted list ``items`` (no repeats), keeping the ``cap`` largest.

    Keeping the largest, rather than the newest-arrived, keeps the result
    independent of arrival order.
    """
    if value in items:
        return
    items.append(value)
    items.sort()
    if len(items) > cap:
        del items[0]


def _apply_profile(state: LeadState, data: Any, t: float) -> None:
    """Last writer wins per field, by event time (so late-arriving old updates lose)."""
    for name in data.model_fields_set:
        value = getattr(data, name)
        if value is None:
            continue
        if t < state.profile_t.get(name, -math.inf):
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        elif hasattr(value, "value"):  # an Enum
            value = value.value
        state.profile[name] = value
        state.profile_t[name] = t


# --- the feature vector ----------------------------------------------------------------------

#: Feature name -> (factor family, how to say it to a salesperson). The order is the vector order.
_NUMERIC_FEATURES: Final[tuple[tuple[str, str, str], ...]] = (
    ("page_views", "behavioral", "{v:.0f} page views"),
    ("high_intent_page_views", "behavioral", "{v:.0f} visits to pricing/demo/contact pages"),
    ("page_minutes", "behavioral", "{v:.0f} minutes on the site"),
    ("email_opens", "behavioral", "{v:.0f} email opens"),
    ("email_clicks", "behavioral", "{v:.0f} email clicks"),
    ("email_click_rate", "behavioral", "clicks {v:.0%} of opened emails"),
    (
        "behavioral_recent",
        "behavioral",
        "web and email activity recently ({v:.1f}, 7-day half-life)",
    ),
    ("calls", "engagement", "{v:.0f} calls logged"),
    ("call_answer_rate", "engagement", "answers {v:.0%} of calls"),
    ("call_minutes", "engagement", "{v:.0f} minutes on calls"),
    ("meetings", "engagement", "{v:.0f} meetings held"),
    ("demo_requests", "engagement", "{v:.0f} demo requests"),
    ("form_submits", "engagement", "{v:.0f} forms submitted"),
    ("interaction_rate", "engagement", "responds to {v:.0%} of touches"),
    ("engagement_recent", "engagement", "calls, meetings and demos recently ({v:.1f})"),
    ("downloads", "content", "{v:.0f} content downloads"),
    ("distinct_assets", "content", "{v:.0f} different assets downloaded"),
    ("content_recent", "content", "content downloads recently ({v:.1f})"),
    ("recency_days", "temporal", "last active {v:.1f} days ago"),
    ("tenure_days", "temporal", "known for {v:.0f} days"),
    ("active_days_30d", "temporal", "active on {v:.0f} of the last 30 days"),
    ("activities_per_active_day", "temporal", "{v:.1f} activities per active day"),
    ("activities", "temporal", "{v:.0f} activities in all"),
    ("social_engagements", "interaction", "{v:.0f} social engagements"),
    ("referrals", "interaction", "{v:.0f} referrals made"),
    ("interaction_recent", "interaction", "social activity and referrals recently ({v:.1f})"),
    ("company_size_log10", "demographic", "company of ~{size} employees"),
    ("seniority_rank", "demographic", "seniority: {seniority}"),
    ("has_profile", "quality", "profile known: {yesno}"),
    ("contact_completeness", "quality", "contact details {v:.0%} complete"),
)
_ONE_HOT: Final = (
    ("industry", INDUSTRIES, "demographic"),
    ("lead_source", LEAD_SOURCES, "quality"),
)
#: The words for a count of exactly one, where the plural would read wrong ("1 demo request").
_SINGULAR: Final[dict[str, str]] = {
    "page_views": "1 page view",
    "high_intent_page_views": "1 visit to pricing/demo/contact pages",
    "page_minutes": "1 minute on the site",
    "email_opens": "1 email open",
    "email_clicks": "1 email click",
    "calls": "1 call logged",
    "call_minutes": "1 minute on calls",
    "meetings": "1 meeting held",
    "demo_requests": "1 demo request",
    "form_submits": "1 form submitted",
    "downloads": "1 content download",
    "distinct_assets": "1 asset downloaded",
    "tenure_days": "known for 1 day",
    "activities": "1 activity in all",
    "social_engagements": "1 social engagement",
    "referrals": "1 referral made",
}

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(n for n, _, _ in _NUMERIC_FEATURES) + tuple(
    f"{prefix}={value}" for prefix, vocab, _ in _ONE_HOT for value in vocab
)
FEATURE_FAMILY: Final[dict[str, str]] = {n: fam for n, fam, _ in _NUMERIC_FEATURES} | {
    f"{prefix}={value}": fam for prefix, vocab, fam in _ONE_HOT for value in vocab
}
N_FEATURES: Final = len(FEATURE_NAMES)
_INDEX: Final = {name: i for i, name in enumerate(FEATURE_NAMES)}
_N_NUMERIC: Final = len(_NUMERIC_FEATURES)
_TEMPLATES: Final = {n: tpl for n, _, tpl in _NUMERIC_FEATURES}
_SENIORITY_NAMES: Final = {rank: name.replace("_", "-") for name, rank in SENIORITY_RANK.items()}


def normalize_category(
    value: str | None, vocabulary: tuple[str, ...], aliases: dict[str, str]
) -> str | None:
    """Map free text to a vocabulary entry: lower-case, underscores, aliases, else ``other``."""
    if value is None:
        return None
    key = _category_key(value)
    key = aliases.get(key, key)
    return key if key in vocabulary else "other"


def _category_key(value: str) -> str:
    return re.sub(r"[\s/&-]+", "_", value.strip().lower())


def seniority_of(profile: dict[str, Any]) -> str | None:
    """The stated seniority, or one inferred from the job title."""
    if profile.get("seniority"):
        return str(profile["seniority"])
    title = profile.get("job_title")
    if not title:
        return None
    for pattern, level in _TITLE_RULES:
        if pattern.search(title):
            return level
    return "individual"


def to_vector(state: LeadState, out: np.ndarray | None = None) -> np.ndarray:
    """The feature vector of ``state``, valued at its latest event time.

    Args:
        state: a lead's state.
        out: an optional float64 array of length :data:`N_FEATURES` to fill (e.g. a row
            of a batch matrix), avoiding an allocation per lead.

    Returns:
        ``out`` (or a new array), in the order of :data:`FEATURE_NAMES`.
    """
    v = np.zeros(N_FEATURES) if out is None else out
    if out is not None:
        v[:] = 0.0
    c = state.counts
    as_of = state.last_event_t or 0.0
    views = c.get("lead.page_viewed", 0)
    opens = c.get("lead.email_opened", 0)
    clicks = c.get("lead.email_clicked", 0)
    calls = c.get("lead.call_logged", 0)
    downloads = c.get("lead.content_downloaded", 0)
    activities = sum(c.get(t, 0) for t in FAMILY_OF_TYPE)
    responsive = sum(c.get(t, 0) for t in _RESPONSIVE_TYPES) + state.calls_answered
    decay = (
        math.exp(-_DECAY_PER_S * (as_of - state.decay_ref_t))
        if state.decay_ref_t is not None
        else 0.0
    )
    today = int(as_of // DAY_S)
    active_30d = sum(1 for d in state.active_days if today - 30 < d <= today)
    profile = state.profile
    size = profile.get("company_size")
    seniority = seniority_of(profile)
    contacts = profile.get("contact_fields") or {}

    v[0] = views
    v[1] = state.high_intent_views
    v[2] = state.page_seconds / 60.0
    v[3] = opens
    v[4] = clicks
    v[5] = min(clicks / opens, 1.0) if opens else 0.0
    v[6] = state.decayed.get("behavioral", 0.0) * decay
    v[7] = calls
    v[8] = state.calls_answered / calls if calls else 0.0
    v[9] = state.call_seconds / 60.0
    v[10] = c.get("lead.meeting_held", 0)
    v[11] = c.get("lead.demo_requested", 0)
    v[12] = c.get("lead.form_submitted", 0)
    v[13] = responsive / activities if activities else 0.0
    v[14] = state.decayed.get("engagement", 0.0) * decay
    v[15] = downloads
    v[16] = len(state.assets)
    v[17] = state.decayed.get("content", 0.0) * decay
    v[18] = (as_of - state.last_activity_t) / DAY_S if state.last_activity_t is not None else 365.0
    v[19] = (as_of - state.first_event_t) / DAY_S if state.first_event_t is not None else 0.0
    v[20] = active_30d
    v[21] = activities / len(state.active_days) if state.active_days else 0.0
    v[22] = activities
    v[23] = c.get("lead.social_engaged", 0)
    v[24] = c.get("lead.referral_made", 0)
    v[25] = state.decayed.get("interaction", 0.0) * decay
    v[26] = math.log10(size) if size else 0.0
    v[27] = SENIORITY_RANK[seniority] if seniority else 0.0
    v[28] = 1.0 if profile else 0.0
    v[29] = sum(1 for f in CONTACT_FIELDS if contacts.get(f)) / len(CONTACT_FIELDS)
    industry = normalize_category(profile.get("industry"), INDUSTRIES, _INDUSTRY_ALIASES)
    if industry is not None:
        v[_INDEX[f"industry={industry}"]] = 1.0
    source = normalize_category(profile.get("lead_source"), LEAD_SOURCES, _SOURCE_ALIASES)
    if source is not None:
        v[_INDEX[f"lead_source={source}"]] = 1.0
    return v


NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(n for n, _, _ in _NUMERIC_FEATURES)
#: The categorical inputs of the stream's vector and their vocabularies (one-hot, in order).
CATEGORICAL_FEATURES: Final[dict[str, tuple[str, ...]]] = {
    prefix: vocab for prefix, vocab, _ in _ONE_HOT
}


def state_record(state: LeadState) -> dict[str, Any]:
    """The lead's features as one named record: numbers by name, categories normalized.

    ``FeaturePipeline.fixed(NUMERIC_FEATURES, CATEGORICAL_FEATURES).transform_one`` of this
    record equals :func:`to_vector` of the state (a test holds them together): the stream's
    vector is the same kind of pipeline as a CRM table's, with a vocabulary fixed in code.
    """
    v = to_vector(state)
    record: dict[str, Any] = {name: float(v[i]) for i, name in enumerate(NUMERIC_FEATURES)}
    record["industry"] = normalize_category(
        state.profile.get("industry"), INDUSTRIES, _INDUSTRY_ALIASES
    )
    record["lead_source"] = normalize_category(
        state.profile.get("lead_source"), LEAD_SOURCES, _SOURCE_ALIASES
    )
    return record


def to_matrix(states: list[LeadState]) -> np.ndarray:
    """Stack the vectors of ``states`` into one ``(len(states), N_FEATURES)`` matrix."""
    x = np.zeros((len(states), N_FEATURES))
    for row, state in zip(x, states):
        to_vector(state, out=row)
    return x


def describe(feature: str, value: float) -> str:
    """Say what a feature value means, in words a salesperson understands.

    Examples:
        >>> describe("demo_requests", 3.0), describe("demo_requests", 1.0)
        ('3 demo requests', '1 demo request')
        >>> describe("industry=software", 1.0)
        'industry: software'
        >>> describe("industry=software", 0.0)
        'industry is not software'
    """
    if "=" in feature:
        prefix, category = feature.split("=", 1)
        noun = prefix.replace("_", " ")
        category = category.replace("_", " ")
        return f"{noun}: {category}" if value else f"{noun} is not {category}"
    if feature == "company_size_log10" and not value:
        return "company size unknown"
    template = _TEMPLATES[feature]
    if feature in _SINGULAR and round(value) == 1:
        return _SINGULAR[feature]
    words: dict[str, Any] = {"v": value}
    # Only what the template uses: ``10 ** value`` overflows for most other features.
    if "{size}" in template:
        words["size"] = f"{10 ** min(value, 9.0):,.0f}"
    if "{seniority}" in template:
        words["seniority"] = _SENIORITY_NAMES.get(int(value), "unknown") if value else "unknown"
    if "{yesno}" in template:
        words["yesno"] = "yes" if value else "no"
    return template.format(**words)
