"""Minimising what a lead state keeps leaves every feature vector as it was.

The vectors were recorded with the code before minimisation (fixtures/profile_vectors.json,
made by fixtures/record_profile_vectors.py): models trained then need no retraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from leadscore.models.features.catalog import (
    INDUSTRIES,
    INDUSTRY_ALIASES,
    LEAD_SOURCES,
    SOURCE_ALIASES,
    normalize_category,
    seniority_of,
)
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_matrix
from leadscore.models.privacy.minimise import minimised
from leadscore.schemas.events import lead_event_adapter

RECORDED = orjson.loads((Path(__file__).parent / "fixtures" / "profile_vectors.json").read_bytes())


def _by_lead() -> list[list[Any]]:
    by_lead: dict[str, list[Any]] = {}
    for raw in RECORDED["events"]:
        event = minimised(lead_event_adapter.validate_python(raw))  # as the worker decodes it
        by_lead.setdefault(event.subject, []).append(event)
    return list(by_lead.values())


def _assert_free_text_gone(state: LeadState) -> None:
    profile = state.profile
    assert "job_title" not in profile and "job_title" not in state.profile_t
    assert profile.get("industry") in (None, *INDUSTRIES)
    assert profile.get("lead_source") in (None, *LEAD_SOURCES)


def test_states_built_today_give_the_vectors_recorded_before() -> None:
    states = []
    for own in _by_lead():
        state = LeadState(own[0].subject)
        for event in own:
            apply_event(state, event)
        _assert_free_text_gone(state)
        states.append(state)
    assert np.array_equal(to_matrix(states), np.array(RECORDED["final_vectors"]))


def test_states_stored_before_load_minimised_and_score_the_same() -> None:
    assert sum("job_title" in s["profile"] for s in RECORDED["half_states"]) >= 15
    half, final = [], []
    for stored, own in zip(RECORDED["half_states"], _by_lead(), strict=True):
        state = LeadState.from_dict(orjson.loads(orjson.dumps(stored)))
        _assert_free_text_gone(state)
        half.append(LeadState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))))
        for event in own[len(own) // 2 :]:
            apply_event(state, event)
        final.append(state)
    assert np.array_equal(to_matrix(half), np.array(RECORDED["half_vectors"]))
    assert np.array_equal(to_matrix(final), np.array(RECORDED["final_vectors"]))


def test_the_recorded_events_hold_what_is_minimised() -> None:
    """The fixture is worth its name: raw titles, non-vocabulary text, queries, referrals."""
    data = [e["data"] for e in RECORDED["events"]]
    assert sum("job_title" in d for d in data) >= 30
    assert sum(d.get("industry") not in (None, *INDUSTRIES) for d in data) >= 30
    assert sum(d.get("lead_source") not in (None, *LEAD_SOURCES) for d in data) >= 20
    assert sum("?" in d.get("url", "") or "@" in d.get("url", "") for d in data) >= 50
    assert any(d.get("referred_lead_id") for d in data)


@pytest.mark.parametrize(
    ("vocabulary", "aliases"),
    [(INDUSTRIES, INDUSTRY_ALIASES), (LEAD_SOURCES, SOURCE_ALIASES)],
)
def test_normalising_twice_changes_nothing(
    vocabulary: tuple[str, ...], aliases: dict[str, str]
) -> None:
    for entry in vocabulary:
        assert normalize_category(entry, vocabulary, aliases) == entry
    for alias in aliases:
        once = normalize_category(alias, vocabulary, aliases)
        assert normalize_category(once, vocabulary, aliases) == once


def test_the_newer_of_an_old_title_and_a_new_level_wins() -> None:
    older_title = LeadState.from_dict(
        LeadState(
            "x",
            profile={"job_title": "CEO", "title_level": "manager"},
            profile_t={"job_title": 1.0, "title_level": 2.0},
        ).to_dict()
    )
    assert older_title.profile == {"title_level": "manager"}
    newer_title = LeadState(
        "x",
        profile={"job_title": "CEO", "title_level": "manager"},
        profile_t={"job_title": 3.0, "title_level": 2.0},
    )
    newer_title = LeadState.from_dict(newer_title.to_dict())
    assert newer_title.profile == {"title_level": "c_level"}
    assert newer_title.profile_t == {"title_level": 3.0}
    # a profile dict that was never loaded through from_dict still gives the level
    assert seniority_of({"job_title": "VP Sales"}) == "vp"
