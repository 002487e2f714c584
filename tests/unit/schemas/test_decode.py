"""Schema validation: valid events decode; invalid ones get a code and a message naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from leadscore.schemas.decode import EventKind, decode_event, kind_of
from leadscore.schemas.errors import InvalidEventError
from leadscore.schemas.events import EVENT_TYPES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def event(**overrides: object) -> dict:
    base = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "web-tracker",
        "type": "lead.page_viewed",
        "time": "2026-11-26T10:00:00Z",
        "subject": "lead-42",
        "data": {"url": "/pricing", "duration_s": 35},
    }
    base.update(overrides)
    return base


def decode(value: object, **kwargs: object) -> object:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return decode_event(raw, now=NOW, **kwargs)


def test_valid_page_view_decodes_with_lead_id_and_aware_time() -> None:
    ev = decode(event())
    assert ev.type == "lead.page_viewed"
    assert ev.lead_id == "lead-42"
    assert ev.data.duration_s == 35.0
    assert ev.time.tzinfo is not None


@pytest.mark.parametrize(
    ("etype", "data"),
    [
        ("lead.page_viewed", {"url": "/"}),
        ("lead.email_opened", {}),
        ("lead.email_clicked", {"campaign_id": "c1", "url": "https://x"}),
        ("lead.form_submitted", {"form_id": "contact"}),
        ("lead.content_downloaded", {"asset": "wp-1", "kind": "whitepaper"}),
        ("lead.demo_requested", {}),
        ("lead.call_logged", {"answered": True, "duration_s": 120, "outcome": "interested"}),
        ("lead.meeting_held", {"duration_min": 30}),
        ("lead.social_engaged", {"network": "linkedin", "action": "like"}),
        ("lead.referral_made", {"referred_lead_id": "lead-7"}),
        (
            "lead.profile_updated",
            {
                "company_size": 200,
                "industry": "SaaS",
                "country": "DE",
                "contact_fields": {"email": True},
            },
        ),
        ("lead.converted", {"value": 12000}),
        ("lead.disqualified", {"reason": "student"}),
    ],
)
def test_every_event_type_decodes(etype: str, data: dict) -> None:
    assert decode(event(type=etype, data=data)).type == etype


def test_every_known_type_is_covered_by_a_kind() -> None:
    for etype in EVENT_TYPES:
        assert kind_of(etype) in set(EventKind)


def test_unknown_data_fields_are_ignored_and_extensions_kept() -> None:
    ev = decode(event(data={"url": "/", "new_field": 1}, traceparent="00-abc"))
    assert ev.model_extra == {"traceparent": "00-abc"}


@pytest.mark.parametrize(
    ("value", "code", "fragment"),
    [
        (b"not json", "not_json", "not valid JSON"),
        (b"[1,2]", "not_object", "JSON object"),
        (b"", "empty", "no value"),
        (event(type="lead.teleported"), "unknown_type", "lead.teleported"),
        ({k: v for k, v in event().items() if k != "type"}, "schema", "type"),
        ({k: v for k, v in event().items() if k != "subject"}, "schema", "subject"),
        (event(subject=""), "schema", "subject"),
        (event(subject=42), "schema", "subject"),
        (event(time="2026-11-26T10:00:00"), "schema", "time"),
        (event(time="yesterday"), "schema", "time"),
        (event(time="2027-01-01T00:00:00Z"), "future_time", "ahead of now"),
        (event(specversion="0.3"), "schema", "specversion"),
        (event(data={"duration_s": 3}), "schema", "data.url"),
        (event(data={"url": "/", "duration_s": -1}), "schema", "data.duration_s"),
        (event(data={"url": "/", "duration_s": "long"}), "schema", "data.duration_s"),
        (event(type="lead.call_logged", data={"duration_s": 3}), "schema", "data.answered"),
        (
            event(type="lead.profile_updated", data={"company_size": 0}),
            "schema",
            "data.company_size",
        ),
        (event(type="lead.profile_updated", data={"country": "Germany"}), "schema", "data.country"),
        (event(data=None), "schema", "data"),
    ],
)
def test_invalid_events_name_what_is_wrong(value: object, code: str, fragment: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode(value)
    assert info.value.code == code
    assert fragment in info.value.message


def test_oversize_payload_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidEventError) as info:
        decode(event(data={"url": "/" + "x" * 2000}), max_bytes=1000)
    assert info.value.code == "too_large"


def test_event_on_the_wrong_topic_is_refused() -> None:
    with pytest.raises(InvalidEventError) as info:
        decode(event(type="lead.converted", data={}), expected_kind=EventKind.ACTIVITY)
    assert info.value.code == "wrong_topic"
    assert "outcome topic" in info.value.message
