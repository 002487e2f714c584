"""Model events: the champion-change schema, its key, UTC times, and room for later types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from leadscore.schemas.models import (
    ChampionChanged,
    ModelEvent,
    champion_changed,
    decode_model_event,
)

V1, V2 = "20261127T030939Z-0fdf18", "20261127T031530Z-3a9974"


def test_a_promotion_round_trips_as_json() -> None:
    event = champion_changed("model.promoted", version=V2, previous=V1, reason="better AUC")
    raw = orjson.dumps(event.model_dump(mode="json"))
    assert set(orjson.loads(raw)) == {
        "type",
        "id",
        "version",
        "previous",
        "segment",
        "reason",
        "at",
    }
    assert decode_model_event(raw) == event
    assert isinstance(decode_model_event(raw), ChampionChanged)


def test_the_key_is_the_segment_or_default() -> None:
    assert champion_changed("model.rolled_back", version=V1, previous=V2).key == "default"
    assert champion_changed("model.promoted", version=V1, previous=None, segment="eu").key == "eu"


def test_ids_are_unique_and_times_are_utc() -> None:
    ids = {champion_changed("model.promoted", version=V1, previous=None).id for _ in range(100)}
    assert len(ids) == 100
    paris = timezone(timedelta(hours=1))
    event = champion_changed(
        "model.promoted", version=V1, previous=None, at=datetime(2026, 1, 1, 13, tzinfo=paris)
    )
    assert event.at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert event.at.utcoffset() == timedelta(0)


def test_later_types_decode_as_the_envelope() -> None:
    raw = {
        "type": "model.trained",
        "id": "me_1",
        "version": V2,
        "at": "2026-01-01T00:00:00Z",
        "auc": 0.8,
    }  # a field of its own: ignored by the envelope
    event = decode_model_event(orjson.dumps(raw))
    assert type(event) is ModelEvent and event.type == "model.trained" and event.version == V2


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"at": "2026-01-01T00:00:00"}, "timezone"),
        ({"segment": "eu west"}, "segment"),
        ({"type": "lead.scored"}, "type"),
        ({"previous": 5}, "previous"),
    ],
)
def test_invalid_events_are_refused(change: dict[str, object], problem: str) -> None:
    good = champion_changed("model.promoted", version=V2, previous=V1).model_dump(mode="json")
    with pytest.raises(ValidationError) as info:
        decode_model_event(orjson.dumps({**good, **change}))
    assert problem in str(info.value).lower()


def test_a_champion_change_needs_previous_said_explicitly() -> None:
    raw = {"type": "model.promoted", "id": "me_1", "version": V2, "at": "2026-01-01T00:00:00Z"}
    with pytest.raises(ValidationError, match="previous"):
        decode_model_event(orjson.dumps(raw))
