"""The feature vector built from a lead's state, its feature names, and the words for them.

This is the one definition of the feature vector: the stream, the API and batch
scoring all build vectors here, so a lead gets the same score whichever way it
is asked. The vector is valued as of the lead's latest event time (see
:mod:`leadscore.models.features.state`).
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from leadscore.models.features.catalog import (
    INDUSTRIES,
    INDUSTRY_ALIASES,
    LEAD_SOURCES,
    SENIORITY_RANK,
    SOURCE_ALIASES,
    normalize_category,
    seniority_of,
)
from leadscore.models.features.state import DAY_S, DECAY_PER_S, FAMILY_OF_TYPE, LeadState

#: Version of the feature definition; saved with every model so a mismatch is caught at load.
FEATURE_SPEC_VERSION: Final = 1

CONTACT_FIELDS: Final = ("email", "phone", "company", "job_title", "linkedin", "address")
# Responsive actions (the lead acted) over all touches: the interaction rate.
_RESPONSIVE_TYPES: Final = frozenset(
    {"lead.email_clicked", "lead.form_submitted", "lead.demo_requested", "lead.meeting_held"}
)

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
        math.exp(-DECAY_PER_S * (as_of - state.decay_ref_t))
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
    industry = normalize_category(profile.get("industry"), INDUSTRIES, INDUSTRY_ALIASES)
    if industry is not None:
        v[_INDEX[f"industry={industry}"]] = 1.0
    source = normalize_category(profile.get("lead_source"), LEAD_SOURCES, SOURCE_ALIASES)
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
        state.profile.get("industry"), INDUSTRIES, INDUSTRY_ALIASES
    )
    record["lead_source"] = normalize_category(
        state.profile.get("lead_source"), LEAD_SOURCES, SOURCE_ALIASES
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
