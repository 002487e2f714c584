"""What a processed batch gives the closed loop and the dashboard besides scores.

Recent activity entries for Redis, the ids of training examples, and which rescored
vectors are sampled onto the features topic: all deterministic, so a replay writes the
same records again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from hashlib import blake2b
from typing import Any

import orjson

from leadscore.models.privacy.minimise import stored_data

__all__ = ["activity_entry", "example_id", "recent_activity", "sampled"]


#: Longest ``data`` value (as text) kept in an activity entry; longer ones are left out.
ACTIVITY_MAX_VALUE_CHARS = 200


def activity_entry(event: Any) -> bytes:
    """An applied input event as the compact JSON kept in ``P activity:<lead_id>``.

    ``{"id", "type", "time" (ISO UTC), "data"}``: ``data`` holds the event's fields that
    are set, as leadscore keeps them (:func:`~leadscore.models.privacy.minimise.stored_data`:
    no job title, no outcome reason), without any value longer than
    :data:`ACTIVITY_MAX_VALUE_CHARS` characters (as a string, or as JSON for lists and
    objects), so one long URL cannot bloat the list.
    """
    data = stored_data(event)
    small = {
        name: value
        for name, value in data.items()
        if len(value if isinstance(value, str) else orjson.dumps(value)) <= ACTIVITY_MAX_VALUE_CHARS
    }
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": small,
        }
    )


def recent_activity(applied: Iterable[tuple[str, Any]], keep: int) -> dict[str, list[bytes]]:
    """Lead id -> :func:`activity_entry` of its applied events, oldest first by event time.

    ``applied``: (lead id, event) of each event applied to a state (``BatchResult.activity``).

    At most the ``keep`` newest per lead are encoded (the list is capped at that anyway);
    ``keep=0`` gives nothing.
    """
    if not keep:
        return {}
    by_lead: dict[str, list[Any]] = {}
    for lead_id, event in applied:
        by_lead.setdefault(lead_id, []).append(event)
    return {
        lead_id: [activity_entry(event) for event in sorted(events, key=lambda e: e.time)[-keep:]]
        for lead_id, events in by_lead.items()
    }


def example_id(lead_id: str, outcome_event_id: str) -> str:
    """The training example's id: one lead's first outcome always gives the same id."""
    digest = blake2b(f"{lead_id}\x00{outcome_event_id}".encode(), digest_size=12)
    return "ex_" + digest.hexdigest()


def sampled(cause_event_id: str, rate: float) -> bool:
    """Whether the vector rescored for ``cause_event_id`` goes to the features topic."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = blake2b(cause_event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64
