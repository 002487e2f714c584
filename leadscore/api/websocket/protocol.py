"""What flows through the ``/v1/stream`` feed: positions, score events and subscriptions.

Values only, no I/O: a position encodes Kafka's next offset of every partition (so a
position taken on one replica resumes on any other), a :class:`ScoreEntry` is one score
event decoded once and ready to send, and a :class:`Subscription` is one client's filter.
The message protocol is in ``docs/websocket.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leadscore.schemas.privacy import is_erased_event

#: Lead ids one subscription may name.
MAX_FILTER_LEADS = 1000

_POSITION_PREFIX = "v1."
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class StreamRequestError(ValueError):
    """A client's query or message is not valid; ``code`` names the problem for machines."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- positions ---------------------------------------------------------------------------------


def _base36(n: int) -> str:
    if n < 36:
        return _DIGITS[n]
    out = []
    while n:
        n, digit = divmod(n, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def encode_position(offsets: Sequence[int]) -> str:
    """A position as text: ``v1.`` and the next offset of each partition, base 36, dot-separated.

    Args:
        offsets: the next offset to read in each partition, in partition order.

    Examples:
        >>> encode_position([0, 35, 1296])
        'v1.0.z.100'
    """
    if any(o < 0 for o in offsets):
        raise ValueError(f"offsets must be >= 0, got {list(offsets)}")
    return _POSITION_PREFIX + ".".join(_base36(o) for o in offsets)


def decode_position(text: str) -> tuple[int, ...]:
    """The offsets of a position made by :func:`encode_position`.

    Raises:
        StreamRequestError: ``text`` is not a position (code ``invalid_position``).

    Examples:
        >>> decode_position("v1.0.z.100")
        (0, 35, 1296)
    """
    if not text.startswith(_POSITION_PREFIX) or len(text) > 4096:
        raise StreamRequestError(
            "invalid_position",
            f"{text[:40]!r} is not a stream position: use the 'position' of a message this "
            "feed sent (it looks like 'v1.1a.0.3f')",
        )
    try:
        offsets = tuple(int(part, 36) for part in text[len(_POSITION_PREFIX) :].split("."))
    except ValueError:
        raise StreamRequestError(
            "invalid_position",
            f"{text[:40]!r} is not a stream position: after 'v1.' come base-36 offsets "
            "separated by dots",
        ) from None
    if any(o < 0 for o in offsets):
        raise StreamRequestError("invalid_position", f"{text[:40]!r} has a negative offset")
    return offsets


def elementwise_max(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The position at or past both ``a`` and ``b``: the larger offset of each partition.

    Examples:
        >>> elementwise_max([3, 0, 7], [1, 4, 7])
        (3, 4, 7)
    """
    return tuple(x if x >= y else y for x, y in zip(a, b))


# --- events and subscriptions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreEntry:
    """One score event, ready to send: decoded once, shared by every client.

    Attributes:
        partition: its partition.
        offset: its offset.
        lead_id: the lead it is about.
        grade_changed: its grade differs from the previous one (a lead's first score counts).
        vector: the feed's position *after* it: the next offset of every partition.
        frame: the ``score`` (or ``erased``) message as JSON text.
        data_at: where the event's JSON starts in ``frame`` (it ends before the last ``}``).
    """

    partition: int
    offset: int
    lead_id: str
    grade_changed: bool
    vector: tuple[int, ...]
    frame: str
    data_at: int
    erased: bool = False
    """A ``lead.erased`` event (sent as an ``erased`` message): the client must forget the lead."""

    @property
    def data(self) -> str:
        """The event's own JSON text (the record's value)."""
        return self.frame[self.data_at : -1]

    def before(self) -> tuple[int, ...]:
        """The position just before this event (to resume from, so that it is sent again)."""
        vector = list(self.vector)
        vector[self.partition] = self.offset
        return tuple(vector)


def score_frame(position: str, data: str, kind: str = "score") -> tuple[str, int]:
    """The ``score`` (or ``erased``) message for an event's JSON text, and where that text
    starts in it."""
    head = f'{{"type":"{kind}","position":"{position}","data":'
    return f"{head}{data}}}", len(head)


def make_entry(
    partition: int, offset: int, vector: tuple[int, ...], raw: bytes, event: Mapping[str, Any]
) -> ScoreEntry:
    """A :class:`ScoreEntry` for a decoded record (``raw`` is known to be valid JSON)."""
    erased = is_erased_event(event)
    kind = "erased" if erased else "score"
    frame, data_at = score_frame(encode_position(vector), raw.decode(), kind)
    return ScoreEntry(
        partition=partition,
        offset=offset,
        lead_id=str(event["lead_id"]),
        grade_changed=erased or event.get("grade") != event.get("previous_grade"),
        vector=vector,
        frame=frame,
        data_at=data_at,
        erased=erased,
    )


@dataclass(frozen=True)
class Subscription:
    """What one client wants: every lead or some lead ids; every score change or grade changes.

    Attributes:
        leads: the lead ids to send, or ``None`` for every lead.
        grades_only: send only events whose grade differs from the previous grade.
    """

    leads: frozenset[str] | None = None
    grades_only: bool = False

    def matches(self, entry: ScoreEntry) -> bool:
        """Whether ``entry`` is for this client.

        Examples:
            >>> e = ScoreEntry(0, 5, "l1", False, (6,), "", 0)
            >>> Subscription().matches(e), Subscription(frozenset({"l2"})).matches(e)
            (True, False)
            >>> Subscription(grades_only=True).matches(e)
            False
        """
        if self.leads is not None and entry.lead_id not in self.leads:
            return False
        return entry.grade_changed or not self.grades_only

    def describe(self) -> dict[str, Any]:
        """The subscription as sent back to the client."""
        return {
            "leads": sorted(self.leads) if self.leads is not None else None,
            "grades_only": self.grades_only,
        }

    @classmethod
    def parse(cls, leads: Any, grades_only: Any) -> Subscription:
        """A subscription from a query (``leads="a,b"``, ``grades_only="true"``) or a message.

        Args:
            leads: ``None`` (every lead), a comma-separated string, or a list of strings.
            grades_only: ``None``/``False``/``True`` or the strings ``true``/``false``/``1``/``0``.

        Raises:
            StreamRequestError: a value is malformed, or too many leads are named.

        Examples:
            >>> Subscription.parse("a, b", "true").describe()
            {'leads': ['a', 'b'], 'grades_only': True}
        """
        if leads is None:
            chosen = None
        else:
            if isinstance(leads, str):
                items: list[Any] = leads.split(",")
            elif isinstance(leads, list):
                items = leads
            else:
                raise StreamRequestError(
                    "invalid_subscription",
                    f"'leads' must be a list of lead ids or null, got {type(leads).__name__}",
                )
            if not all(isinstance(item, str) for item in items):
                raise StreamRequestError("invalid_subscription", "'leads' must hold strings only")
            chosen = frozenset(item.strip() for item in items if item.strip())
            if not chosen:
                raise StreamRequestError(
                    "invalid_subscription",
                    "'leads' names no lead id; leave it out (or null) to get every lead",
                )
            if len(chosen) > MAX_FILTER_LEADS:
                raise StreamRequestError(
                    "invalid_subscription",
                    f"'leads' names {len(chosen)} leads; at most {MAX_FILTER_LEADS} per connection",
                )
        return cls(chosen, _parse_bool("grades_only", grades_only))


def _parse_bool(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no", ""):
        return value.lower() in ("true", "1", "yes")
    raise StreamRequestError(
        "invalid_subscription", f"'{name}' must be true or false, got {value!r}"
    )
