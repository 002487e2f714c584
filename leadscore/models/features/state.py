"""Per-lead feature state, updated in event time: :class:`LeadState` and :func:`apply_event`.

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

from leadscore.models.features.catalog import (
    INDUSTRIES,
    LEAD_SOURCES,
    kept_profile_field,
    title_level,
)
from leadscore.schemas.events import ACTIVITY_TYPES, OUTCOME_TYPES

DAY_S: Final = 86_400.0
#: Half-life of the decayed ("recent") counts.
HALF_LIFE_S: Final = 7 * DAY_S
DECAY_PER_S: Final = math.log(2) / HALF_LIFE_S
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
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LeadState:
        """The state from :meth:`to_dict`; one stored before profiles were minimised keeps
        only what it would keep today (:func:`minimise_profile`), with the same vector."""
        state = cls(**data)
        minimise_profile(state.profile, state.profile_t)
        return state

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
            factor = math.exp(-DECAY_PER_S * (t - ref))
            for name in state.decayed:
                state.decayed[name] *= factor
        state.decay_ref_t = t
        weight = 1.0
    else:
        weight = math.exp(-DECAY_PER_S * (ref - t))
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


_VOCABULARY: Final = {"industry": frozenset(INDUSTRIES), "lead_source": frozenset(LEAD_SOURCES)}


def minimise_profile(profile: dict[str, Any], profile_t: dict[str, float]) -> None:
    """Turn the free text a stored profile may still hold into what is kept now, in place.

    A ``job_title`` becomes ``title_level`` (unless a newer one is there: last writer wins,
    as when the events came), a raw ``industry`` or ``lead_source`` its vocabulary entry.
    Normalising is idempotent, so the vector is unchanged (tested against vectors recorded
    with the code before, tests/unit/models/test_profile_minimisation.py).
    """
    if "job_title" in profile:
        title = profile.pop("job_title")
        t = profile_t.pop("job_title", -math.inf)
        if title and t >= profile_t.get("title_level", -math.inf):
            profile["title_level"] = title_level(title)
            if t > -math.inf:
                profile_t["title_level"] = t
    for name, vocabulary in _VOCABULARY.items():
        value = profile.get(name)
        if value is not None and value not in vocabulary:
            profile[name] = kept_profile_field(name, value)[1]


def _apply_profile(state: LeadState, data: Any, t: float) -> None:
    """Last writer wins per field, by event time (so late-arriving old updates lose).

    Free text is kept only as what the features read of it (:func:`kept_profile_field`): a
    job title as the seniority it says (``title_level``), an industry or a lead source as
    its vocabulary entry. The features need no more, and the text is personal data
    (docs/privacy.md).
    """
    for name in data.model_fields_set:
        value = getattr(data, name)
        if value is None:
            continue
        name, value = kept_profile_field(name, value)
        if t < state.profile_t.get(name, -math.inf):
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        elif hasattr(value, "value"):  # an Enum
            value = value.value
        state.profile[name] = value
        state.profile_t[name] = t
