"""Turn raw Kafka record values into validated events, or say exactly why not."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import ValidationError

from leadscore.schemas.errors import InvalidEventError
from leadscore.schemas.events import (
    ACTIVITY_TYPES,
    EVENT_TYPES,
    OUTCOME_TYPES,
    PROFILE_TYPES,
    lead_event_adapter,
)


class EventKind(str, Enum):
    """Which input topic an event type belongs on."""

    ACTIVITY = "activity"
    PROFILE = "profile"
    OUTCOME = "outcome"


_TYPES_OF_KIND: dict[EventKind, frozenset[str]] = {
    EventKind.ACTIVITY: ACTIVITY_TYPES,
    EventKind.PROFILE: PROFILE_TYPES,
    EventKind.OUTCOME: OUTCOME_TYPES,
}


def kind_of(event_type: str) -> EventKind:
    """The kind (and so the topic) an event type belongs to."""
    for kind, types in _TYPES_OF_KIND.items():
        if event_type in types:
            return kind
    raise KeyError(event_type)


def decode_event(
    raw: bytes | None,
    *,
    now: datetime,
    max_bytes: int = 65_536,
    max_future_skew_s: float = 300.0,
    expected_kind: EventKind | None = None,
) -> Any:
    """Validate one raw record value as a lead event.

    Args:
        raw: the record value as it arrived (``None`` for a tombstone).
        now: the current wall-clock time, used only to refuse event times in the future.
        max_bytes: the largest accepted value, in bytes.
        max_future_skew_s: how far ahead of ``now`` an event time may be (clock skew).
        expected_kind: the kind of the topic it came from; another kind is refused.

    Returns:
        The validated event, one of the classes in :mod:`leadscore.schemas.events`.

    Raises:
        InvalidEventError: with a stable ``code`` and a message that names the field.
    """
    if raw is None or len(raw) == 0:
        raise InvalidEventError("empty", "record has no value (expected a CloudEvents JSON object)")
    if len(raw) > max_bytes:
        raise InvalidEventError(
            "too_large", f"record value is {len(raw)} bytes; the limit is {max_bytes} bytes"
        )
    try:
        event = lead_event_adapter.validate_json(raw)
    except ValidationError as exc:
        raise _explain(exc) from exc
    if expected_kind is not None:
        kind = kind_of(event.type)
        if kind is not expected_kind:
            raise InvalidEventError(
                "wrong_topic",
                f"event type {event.type!r} is {_article(kind.value)} {kind.value} event and belongs on the "
                f"{kind.value} topic, not the {expected_kind.value} topic",
            )
    if event.time > now + timedelta(seconds=max_future_skew_s):
        raise InvalidEventError(
            "future_time",
            f"time {event.time.isoformat()} is more than {max_future_skew_s:g}s ahead of "
            f"now ({now.isoformat()}); check the producer's clock and time zone",
        )
    return event


def _explain(exc: ValidationError) -> InvalidEventError:
    """Map a pydantic error to a reason code and a message a producer can act on."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return InvalidEventError("not_json", f"value is not valid JSON: {first['msg']}")
    if kind in ("model_type", "model_attributes_type", "dict_type") and not first["loc"]:
        return InvalidEventError("not_object", "value must be a JSON object (a CloudEvent)")
    if kind == "union_tag_not_found":
        return InvalidEventError("schema", "type: field required (the CloudEvents event type)")
    if kind == "union_tag_invalid":
        got = first.get("input", {}).get("type") if isinstance(first.get("input"), dict) else None
        return InvalidEventError(
            "unknown_type",
            f"type: {got!r} is not a known event type; expected one of {sorted(EVENT_TYPES)}",
        )
    parts = []
    for err in errors[:5]:
        loc = err["loc"]
        # The first element of loc is the union tag (the event type); the rest is the field path.
        path = (
            ".".join(str(p) for p in loc[1:])
            if loc and loc[0] in EVENT_TYPES
            else ".".join(str(p) for p in loc)
        )
        got = "" if err["type"] == "missing" else f" (got {_short(err.get('input'))})"
        parts.append(f"{path or '<root>'}: {err['msg']}{got}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return InvalidEventError("schema", "; ".join(parts) + more)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
