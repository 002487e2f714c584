"""POST /v1/score builds a lead's state with the worker's own event handling."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadscore.api.scores import _LeadError, build_state
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import to_vector
from leadscore.models.privacy.minimise import minimised
from leadscore.schemas.api import ScoreRequest
from leadscore.schemas.events import OUTCOME_TYPES, lead_event_adapter
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator


def _request_from_events(lead: str, events: list[dict]) -> ScoreRequest:
    profile: dict = {}
    profile_time = None
    activities = []
    for event in events:
        if event["type"] == "lead.profile_updated":
            profile.update(event["data"])
            profile_time = event["time"]
        elif event["type"] not in OUTCOME_TYPES:
            activities.append({k: event[k] for k in ("type", "time", "id", "data")})
    body: dict = {"lead_id": lead, "activities": activities}
    if profile:
        body |= {"profile": profile, "profile_time": profile_time}
    return ScoreRequest.model_validate(body)


def test_a_body_gives_the_vector_the_worker_builds_from_the_same_events() -> None:
    events = list(
        Simulator(
            SimConfig(n_leads=60, span_days=20, seed=4, start=datetime(2025, 1, 1, tzinfo=UTC))
        ).events()
    )
    by_lead: dict[str, list[dict]] = {}
    for event in events:
        by_lead.setdefault(event["subject"], []).append(event)
    compared = 0
    for lead, own in by_lead.items():
        if sum(e["type"] == "lead.profile_updated" for e in own) > 1:
            continue  # several partial updates: the body carries one merged profile
        stream = LeadState(lead)
        for event in own:
            apply_event(stream, lead_event_adapter.validate_python(event))
        api = build_state(_request_from_events(lead, own))
        assert to_vector(api).tolist() == to_vector(stream).tolist(), lead
        compared += 1
    assert compared >= 30


def test_an_invalid_activity_is_named_with_its_index_and_field() -> None:
    request = ScoreRequest.model_validate(
        {"lead_id": "x", "activities": [
            {"type": "lead.email_opened", "time": "2026-01-01T00:00:00Z"},
            {"type": "lead.content_downloaded", "time": "2026-01-01T00:00:00Z", "data": {"kind": "ebook"}},
        ]}
    )  # fmt: skip
    with pytest.raises(
        _LeadError, match=r"activity 1 \(lead.content_downloaded\).*activities\[1\]\.data\.asset"
    ):
        build_state(request)


def test_a_misspelt_profile_field_is_refused_rather_than_ignored() -> None:
    with pytest.raises(ValueError, match="company_sise"):
        ScoreRequest.model_validate({"lead_id": "x", "profile": {"company_sise": 40}})


def test_a_body_cleans_urls_as_the_worker_does() -> None:
    """A word in a dropped query string or fragment counts nowhere: not in the stream (which
    cleans each event as it decodes it), so not in a body either."""
    views = [
        {"type": "lead.page_viewed", "time": f"2026-01-01T00:0{i}:00Z", "id": f"v{i}",
         "data": {"url": url}}
        for i, url in enumerate(["/blog?next=/pricing", "/home#contact", "/p?utm_campaign=demo"])
    ]  # fmt: skip
    stream = LeadState("x")
    for view in views:
        event = lead_event_adapter.validate_python(
            {"specversion": "1.0", "source": "t", "subject": "x", **view}
        )
        apply_event(stream, minimised(event))
    api = build_state(ScoreRequest.model_validate({"lead_id": "x", "activities": views}))
    assert api.high_intent_views == stream.high_intent_views == 1  # the kept utm_campaign
    assert to_vector(api).tolist() == to_vector(stream).tolist()
    assert (
        build_state(
            ScoreRequest.model_validate({"lead_id": "x", "activities": views}), keep=()
        ).high_intent_views
        == 0
    )
