"""The WebSocket feed ``/v1/stream``: score events of ``leads.scores.v1``, fanned out to clients.

One group-less consumer per API process reads every partition of the scores topic from
its end (so every replica sees every event), decodes each record once, hands it to the
listeners (the score cache) and to :class:`FanOut`, which keeps a ring of recent events
for resumes and puts each event in the bounded queue of every client that wants it.
Each connection has its own sender task; the consumer never awaits a socket, so a slow
client only ever delays itself: when its queue is full the oldest queued event is
dropped and the client is told how many it lost and where to resume from.

Positions are Kafka's: the next offset of every partition, so a position taken on one
replica resumes on any other. The message protocol is in ``docs/websocket.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from fastapi import APIRouter, WebSocket
from faust.types import TP
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from leadscore.api.auth import authenticate
from leadscore.api.errors import ApiError
from leadscore.settings import Settings
from leadscore.streams.kafka import client_options
from leadscore.streams.tansu_compat import TansuCompatError, fetch_end_offsets

log = logging.getLogger(__name__)

router = APIRouter(tags=["stream"])

#: Version of the message protocol, sent in ``hello``; bumped on an incompatible change.
PROTOCOL_VERSION = 1
#: Lead ids one subscription may name.
MAX_FILTER_LEADS = 1000
#: Close codes (RFC 6455): refused by policy (no key, bad request) / try again later.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013

_POSITION_PREFIX = "v1."
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Longest a connection waits for the feed's first positioning before it is refused.
_READY_WAIT_S = 10.0
#: Budget to connect and position the feed's consumer, and for one end-offset probe.
_CONNECT_TIMEOUT_S = 30.0
_PROBE_TIMEOUT_S = 10.0
#: How often the feed checks the broker answers (and measures its lag), in seconds.
_PROBE_INTERVAL_S = 5.0
_MAX_BACKOFF_S = 30.0
#: Records per poll of the feed's consumer.
_POLL_MAX_RECORDS = 500
_POLL_TIMEOUT_MS = 200
#: Topic read-backs (resumes older than the ring) running at once per process, and how
#: long one may go without the broker returning anything before it is given up.
_CATCHUP_CONCURRENCY = 8
_CATCHUP_STALL_S = 15.0


class StreamRequestError(ValueError):
    """A client's query or message is not valid; ``code`` names the problem for machines."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FeedFullError(RuntimeError):
    """The process already serves ``ws_max_clients`` connections."""


class FeedTopicMissingError(RuntimeError):
    """The scores topic does not exist (yet), or the feed is not connected."""


class ResumeTooOldError(RuntimeError):
    """The events after a resume position are no longer on the broker."""


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


def _elementwise_max(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
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
        frame: the ``score`` message as JSON text.
        data_at: where the event's JSON starts in ``frame`` (it ends before the last ``}``).
    """

    partition: int
    offset: int
    lead_id: str
    grade_changed: bool
    vector: tuple[int, ...]
    frame: str
    data_at: int

    @property
    def data(self) -> str:
        """The event's own JSON text (the record's value)."""
        return self.frame[self.data_at : -1]

    def before(self) -> tuple[int, ...]:
        """The position just before this event (to resume from, so that it is sent again)."""
        vector = list(self.vector)
        vector[self.partition] = self.offset
        return tuple(vector)


def score_frame(position: str, data: str) -> tuple[str, int]:
    """The ``score`` message for an event's JSON text, and where that text starts in it."""
    head = f'{{"type":"score","position":"{position}","data":'
    return f"{head}{data}}}", len(head)


def make_entry(
    partition: int, offset: int, vector: tuple[int, ...], raw: bytes, event: Mapping[str, Any]
) -> ScoreEntry:
    """A :class:`ScoreEntry` for a decoded record (``raw`` is known to be valid JSON)."""
    frame, data_at = score_frame(encode_position(vector), raw.decode())
    return ScoreEntry(
        partition=partition,
        offset=offset,
        lead_id=str(event["lead_id"]),
        grade_changed=event.get("grade") != event.get("previous_grade"),
        vector=vector,
        frame=frame,
        data_at=data_at,
    )


def decode_score(raw: bytes | None) -> dict[str, Any] | None:
    """A score record's value as a dict, or ``None`` if it is not a score event.

    Only what the feed relies on is checked (a JSON object with a string ``lead_id``):
    the worker validated the event against ``LeadScored`` when it published it.

    Examples:
        >>> decode_score(b'{"lead_id": "l1", "score": 71}')
        {'lead_id': 'l1', 'score': 71}
        >>> decode_score(b'not json') is None, decode_score(b'[1]') is None
        (True, True)
    """
    if raw is None:
        return None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("lead_id"), str):
        return None
    return event


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
    raise StreamRequestError("invalid_subscription", f"'{name}' must be true or false, got {value!r}")


# --- one client --------------------------------------------------------------------------------


class FeedClient:
    """One connection's queue: events waiting to be sent, bounded, dropping the oldest.

    The feed's consumer calls :meth:`offer` (never awaits); the connection's sender takes
    frames with :meth:`take` and waits with :meth:`wait`.

    Args:
        subscription: what the client wants.
        queue_size: events held before the oldest is dropped.
        name: who it is, for the log (the API key's name).
    """

    def __init__(self, subscription: Subscription, queue_size: int, name: str = "") -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.subscription = subscription
        self.queue_size = queue_size
        self.name = name
        self.queue: deque[ScoreEntry] = deque()
        self.control: deque[str] = deque()
        #: Resuming: events of partition p below floor[p] were had already; positions sent
        #: are at least the floor. ``None`` once every position passed it.
        self.floor: tuple[int, ...] | None = None
        self.dropped = 0  # dropped since the last ``dropped`` message
        self.dropped_total = 0
        self.drop_resume: tuple[int, ...] | None = None  # where the current run of drops began
        self.sent = 0
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, entry: ScoreEntry) -> None:
        """Queue ``entry`` if the client wants it; drop the oldest queued event when full.

        The lead filter is applied by :class:`FanOut`'s index before this is called.
        """
        if self.subscription.grades_only and not entry.grade_changed:
            return
        floor = self.floor
        if floor is not None and entry.offset < floor[entry.partition]:
            return  # the client had it before it resumed
        queue = self.queue
        if len(queue) >= self.queue_size:
            oldest = queue.popleft()
            if not self.dropped:
                self.drop_resume = self._at_least_floor(oldest.before())
            self.dropped += 1
            self.dropped_total += 1
        queue.append(entry)
        self._wake()

    def say(self, message: Mapping[str, Any]) -> None:
        """Queue a control message (never dropped, sent before queued events)."""
        self.control.append(orjson.dumps(message).decode())
        self._wake()

    def take(self) -> list[str]:
        """The next frames to send, in order: a control message, or [``dropped``,] one event.

        Empty when there is nothing to send.
        """
        if self.control:
            return [self.control.popleft()]
        frames = []
        if self.dropped:
            frames.append(self._dropped_frame())
        if self.queue:
            frames.append(self.frame_of(self.queue.popleft()))
        return frames

    def frame_of(self, entry: ScoreEntry) -> str:
        """``entry``'s frame, its position raised to the floor while the client resumes."""
        floor = self.floor
        if floor is None:
            return entry.frame
        vector = _elementwise_max(floor, entry.vector)
        if vector == entry.vector:
            self.floor = None  # every later position is past the floor too
            return entry.frame
        return score_frame(encode_position(vector), entry.data)[0]

    def resubscribe(self, subscription: Subscription) -> None:
        """Use ``subscription`` from now on; queued events it does not want are removed."""
        self.subscription = subscription
        self.queue = deque(e for e in self.queue if subscription.matches(e))

    async def wait(self) -> None:
        """Return when there may be something to :meth:`take` (or the client is closed)."""
        if self.control or self.queue or self.dropped or self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        """Wake the sender for good (the connection is ending)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _at_least_floor(self, vector: tuple[int, ...]) -> tuple[int, ...]:
        return vector if self.floor is None else _elementwise_max(self.floor, vector)

    def _dropped_frame(self) -> str:
        count, resume = self.dropped, self.drop_resume or ()
        self.dropped, self.drop_resume = 0, None
        position = encode_position(resume)
        return orjson.dumps(
            {
                "type": "dropped",
                "count": count,
                "resume": position,
                "message": f"{count} score event(s) were dropped because this connection reads "
                "more slowly than events arrive (the oldest queued go first); reconnect with "
                f"?resume={position} to get them, or read faster",
            }
        ).decode()


# --- the fan-out -------------------------------------------------------------------------------


@dataclass
class ResumePlan:
    """What a new connection gets before the live events, decided when it attached.

    Attributes:
        position: the feed's position when the client attached (what a connection that
            receives nothing should resume from).
        resume: the client's resume position, if it asked for one.
        replay: events of the ring the client missed, oldest first (not yet filtered).
        gaps: partition -> (first offset, end offset) to read back from the topic first.
        problem: ``(reason, message)`` if the resume cannot be served.
        check_end: the resume position is past what this process has seen in some
            partition: check it against the topic's end before trusting it.
    """

    position: tuple[int, ...]
    resume: tuple[int, ...] | None = None
    replay: list[ScoreEntry] = field(default_factory=list)
    gaps: dict[int, tuple[int, int]] = field(default_factory=dict)
    problem: tuple[str, str] | None = None
    check_end: bool = False

    @property
    def source(self) -> str:
        """``"topic"``, ``"memory"`` or ``"none"``: where the missed events come from."""
        if self.resume is None or self.problem:
            return "none"
        return "topic" if self.gaps else "memory"


class FanOut:
    """The feed's position, the ring of recent events, and the clients with their filters.

    Pure bookkeeping, no I/O: every method returns without awaiting.

    Args:
        queue_size: events each client's queue holds.
        replay_size: recent events kept for resumes.
        max_clients: connections served at once.
        resume_max_events: most events a resume may read back from the topic.
    """

    def __init__(
        self, queue_size: int, replay_size: int, max_clients: int, resume_max_events: int
    ) -> None:
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.resume_max_events = resume_max_events
        self.partitions = 0
        self.clients: set[FeedClient] = set()
        self._everyone: set[FeedClient] = set()  # no lead filter
        self._by_lead: dict[str, set[FeedClient]] = {}
        self._next: list[int] = []  # next offset per partition: the feed's position
        self._ring: deque[ScoreEntry] = deque(maxlen=replay_size)
        #: Per partition, the first offset the ring can replay: every event of p at or after
        #: it that the feed has seen is in the ring.
        self._ring_start: list[int] = []
        self.events = 0
        self.dropped_before_detach = 0
        self.resumes = {"memory": 0, "topic": 0, "failed": 0}

    # positions ---------------------------------------------------------------------------------

    @property
    def positioned(self) -> bool:
        return self.partitions > 0

    def vector(self) -> tuple[int, ...]:
        """The feed's position: the next offset of each partition."""
        return tuple(self._next)

    def reset(self, offsets: Sequence[int]) -> None:
        """Start (again) at ``offsets``: the ring is emptied, since it no longer leads there."""
        if len(offsets) != self.partitions:
            for client in self.clients:  # their floors describe another layout
                client.floor = None
        self.partitions = len(offsets)
        self._next = list(offsets)
        self._ring_start = list(offsets)
        self._ring.clear()

    def skip(self, partition: int, offset: int) -> None:
        """A record that is not a score event: the position moves past it."""
        if offset >= self._next[partition]:
            self._next[partition] = offset + 1

    def publish(self, partition: int, offset: int, raw: bytes, event: Mapping[str, Any]) -> None:
        """Record one event and hand it to every client that wants it (never awaits)."""
        if offset < self._next[partition]:
            return  # seen already (a consumer restart re-read it)
        self._next[partition] = offset + 1
        entry = make_entry(partition, offset, tuple(self._next), raw, event)
        ring = self._ring
        if ring.maxlen:
            if len(ring) == ring.maxlen:
                evicted = ring[0]
                self._ring_start[evicted.partition] = evicted.offset + 1
            ring.append(entry)
        else:
            self._ring_start[partition] = offset + 1
        self.events += 1
        for client in self._everyone:
            client.offer(entry)
        watchers = self._by_lead.get(entry.lead_id)
        if watchers:
            for client in watchers:
                client.offer(entry)

    # clients -----------------------------------------------------------------------------------

    def attach(self, client: FeedClient, resume: tuple[int, ...] | None = None) -> ResumePlan:
        """Register ``client``; from now on it gets live events. Returns what it missed.

        Raises:
            FeedFullError: ``max_clients`` connections are attached already.
        """
        if len(self.clients) >= self.max_clients:
            raise FeedFullError(
                f"this API process serves its maximum of {self.max_clients} stream connections "
                "(LEADSCORE_WS_MAX_CLIENTS); retry later or on another replica"
            )
        plan = ResumePlan(position=self.vector(), resume=resume)
        if resume is not None:
            self._plan_resume(plan, resume)
            if plan.problem is None:
                client.floor = resume
        self.clients.add(client)
        self._index(client)
        return plan

    def _plan_resume(self, plan: ResumePlan, resume: tuple[int, ...]) -> None:
        if len(resume) != self.partitions:
            plan.problem = (
                "invalid",
                f"the position names {len(resume)} partitions, the topic has {self.partitions}: "
                "it is from another topic or an older layout",
            )
            return
        plan.gaps = {
            p: (resume[p], self._ring_start[p])
            for p in range(self.partitions)
            if resume[p] < self._ring_start[p]
        }
        missing = sum(end - start for start, end in plan.gaps.values())
        if missing > self.resume_max_events:
            plan.gaps = {}
            plan.problem = (
                "too_old",
                f"the position is about {missing} events back, more than the "
                f"{self.resume_max_events} a resume reads (LEADSCORE_WS_RESUME_MAX_EVENTS)",
            )
            return
        plan.check_end = any(resume[p] > self._next[p] for p in range(self.partitions))
        plan.replay = [e for e in self._ring if e.offset >= resume[e.partition]]

    def detach(self, client: FeedClient) -> None:
        """Forget ``client`` (its connection ended)."""
        if client not in self.clients:
            return
        self.clients.discard(client)
        self._unindex(client)
        self.dropped_before_detach += client.dropped_total
        client.close()

    def resubscribe(self, client: FeedClient, subscription: Subscription) -> None:
        """Change ``client``'s filter (queued events it no longer wants are removed)."""
        self._unindex(client)
        client.resubscribe(subscription)
        self._index(client)

    def give_up_resume(self, client: FeedClient, plan: ResumePlan) -> None:
        """The resume failed after all: the client gets live events only, from now on."""
        client.floor = None
        plan.replay = []
        plan.gaps = {}

    def _index(self, client: FeedClient) -> None:
        leads = client.subscription.leads
        if leads is None:
            self._everyone.add(client)
            return
        for lead in leads:
            self._by_lead.setdefault(lead, set()).add(client)

    def _unindex(self, client: FeedClient) -> None:
        leads = client.subscription.leads
        if leads is None:
            self._everyone.discard(client)
            return
        for lead in leads:
            watchers = self._by_lead.get(lead)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del self._by_lead[lead]

    def stats(self) -> dict[str, int]:
        """Counts for ``/metrics``: clients, events, drops, ring, resumes."""
        queued = [len(c.queue) for c in self.clients]
        return {
            "clients": len(self.clients),
            "events": self.events,
            "dropped": self.dropped_before_detach + sum(c.dropped_total for c in self.clients),
            "queued": sum(queued),
            "queue_max": max(queued, default=0),
            "ring_events": len(self._ring),
            "resumes_memory": self.resumes["memory"],
            "resumes_topic": self.resumes["topic"],
            "resumes_failed": self.resumes["failed"],
        }


# --- the consumer ------------------------------------------------------------------------------


class ScoreFeed:
    """Consumes ``leads.scores.v1`` from its end and hands every event to listeners and clients.

    :meth:`start` returns at once; the consumer connects in the background, and
    reconnects with growing pauses (up to 30 s) whenever the broker stops answering,
    resuming where it stopped, so connected clients miss nothing. :attr:`connected` says
    whether it is connected and positioned (``/readyz``).

    Args:
        settings: configuration (topic, broker, ``ws_*`` limits).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.scores_topic
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.hub = FanOut(
            settings.ws_queue_size,
            settings.ws_replay_size,
            settings.ws_max_clients,
            settings.ws_resume_max_events,
        )
        self.connected = False
        self.positioned = asyncio.Event()  # set once, at the first positioning
        self.reconnects = 0
        self.undecodable = 0
        self.listener_errors = 0
        self.lag = 0
        self.delivered = 0
        self._ends: tuple[int, ...] = ()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._catchups = asyncio.Semaphore(_CATCHUP_CONCURRENCY)
        self._chunk = max(1, min(256, settings.ws_queue_size // 2))

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` with every score event (synchronously; it must not block)."""
        self.listeners.append(listener)

    async def start(self) -> None:
        """Start consuming in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="score-feed")
            self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        """Stop consuming and let every connection end."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for client in list(self.hub.clients):
            self.hub.detach(client)

    def stats(self) -> dict[str, int]:
        """Numbers for the Prometheus gauges and ``/v1/metrics/performance``."""
        return {
            "connected": int(self.connected),
            "reconnects": self.reconnects,
            "lag": self.lag,
            "undecodable": self.undecodable,
            "listener_errors": self.listener_errors,
            **self.hub.stats(),
            "delivered": self.delivered,
        }

    # consuming ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay_s = 1.0

        def reset_backoff() -> None:
            nonlocal delay_s
            delay_s = 1.0

        while True:
            try:
                await self._consume(on_positioned=reset_backoff)
            except (KafkaError, OSError, TansuCompatError, TimeoutError, FeedTopicMissingError) as exc:
                self.reconnects += 1
                log.warning(
                    "score feed on %s lost the broker (%r); reconnecting in %.0f s, where it stopped",
                    self.topic, exc, delay_s,
                )  # fmt: skip
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, _MAX_BACKOFF_S)

    def _consumer_for(self, client_id: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=None,  # every API process reads every partition
            enable_auto_commit=False,
            auto_offset_reset="none",  # out of range: _position decides, not aiokafka
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            client_id=client_id,
        )

    async def _consume(self, on_positioned: Callable[[], None]) -> None:
        consumer = self._consumer_for("leadscore-api-feed")
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await consumer.start()
                tps = await self._position(consumer)
            self._consumer = consumer
            self.connected = True
            self.positioned.set()
            on_positioned()
            next_probe = time.monotonic() + _PROBE_INTERVAL_S
            while True:
                batch = await consumer.getmany(
                    *tps, timeout_ms=_POLL_TIMEOUT_MS, max_records=_POLL_MAX_RECORDS
                )
                if batch:
                    await self._handle(batch)
                if time.monotonic() >= next_probe:
                    await self._probe(consumer)
                    next_probe = time.monotonic() + _PROBE_INTERVAL_S
        finally:
            self.connected = False
            self._consumer = None
            await stop_consumer(consumer)

    async def _position(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Assign every partition and seek: to the end the first time, else where we stopped."""
        await consumer.topics()  # refreshes metadata for every topic
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise FeedTopicMissingError(
                f"topic {self.topic} does not exist; `leadscore topics` (or the worker) creates it"
            )
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begin, end = await topic_bounds(consumer, tps)
        hub = self.hub
        if hub.partitions != len(tps):
            if hub.positioned:
                log.warning("%s now has %d partitions (had %d): the feed starts at its end",
                            self.topic, len(tps), hub.partitions)
            hub.reset(end)
        else:
            start = list(hub.vector())
            for p in range(len(tps)):
                if start[p] > end[p]:
                    log.warning("%s:%d ends at %d, before the feed's position %d: the topic was "
                                "recreated? The feed starts at its end", self.topic, p, end[p], start[p])
                    start[p] = end[p]
                elif start[p] < begin[p]:
                    log.warning("%s:%d starts at %d, after the feed's position %d: events were "
                                "deleted before they were read", self.topic, p, begin[p], start[p])
                    start[p] = begin[p]
            if tuple(start) != hub.vector():
                hub.reset(start)
        for tp in tps:
            consumer.seek(tp, hub.vector()[tp.partition])
        self._ends = tuple(end)
        self.lag = sum(e - n for e, n in zip(end, hub.vector()))
        log.info("score feed reading %s from %s", self.topic, encode_position(hub.vector()))
        return tps

    async def _handle(self, batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Decode each record once, give it to the listeners and the fan-out.

        Yields to the event loop every few records so senders of fast clients empty
        their queues during a burst instead of overflowing.
        """
        hub = self.hub
        done = 0
        for tp, records in batch.items():
            partition = tp.partition
            for record in records:
                event = decode_score(record.value)
                if event is None:
                    hub.skip(partition, record.offset)
                    if record.value is not None:  # None: a tombstone (erasure), not ours to show
                        self.undecodable += 1
                        log.warning("score feed: record %s:%d@%d is not a score event; skipped",
                                    tp.topic, partition, record.offset)
                    continue
                for listener in self.listeners:
                    try:
                        listener(event)
                    except Exception:  # a listener's bug must not stop the feed for everyone
                        self.listener_errors += 1
                        log.exception("score feed listener %r failed on %s:%d@%d",
                                      listener, tp.topic, partition, record.offset)
                hub.publish(partition, record.offset, record.value, event)
                done += 1
                if done % self._chunk == 0:
                    await asyncio.sleep(0)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """Ask the broker for the end offsets: proves it answers, and measures the lag."""
        vector = self.hub.vector()
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            ends = await fetch_end_offsets(
                consumer, {TP(self.topic, p): o for p, o in enumerate(vector)}
            )
        self._ends = tuple(ends[TP(self.topic, p)] for p in range(len(vector)))
        self.lag = sum(max(0, e - n) for e, n in zip(self._ends, self.hub.vector()))

    # resumes -----------------------------------------------------------------------------------

    async def end_offsets(self) -> tuple[int, ...]:
        """The topic's end offsets now, asked through the feed's consumer.

        Raises:
            FeedTopicMissingError: the feed is not connected.
            TimeoutError, KafkaError, TansuCompatError: the broker did not answer.
        """
        consumer = self._consumer
        if consumer is None:
            raise FeedTopicMissingError("the score feed is not connected to the broker")
        vector = self.hub.vector()
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            ends = await fetch_end_offsets(
                consumer, {TP(self.topic, p): o for p, o in enumerate(vector)}
            )
        self._ends = tuple(ends[TP(self.topic, p)] for p in range(len(vector)))
        return self._ends

    def known_end(self) -> tuple[int, ...]:
        """The highest end offsets seen (by the last probe, or by reading)."""
        vector = self.hub.vector()
        if len(self._ends) != len(vector):
            return vector
        return _elementwise_max(self._ends, vector)

    async def read_back(
        self, gaps: Mapping[int, tuple[int, int]]
    ) -> AsyncIterator[tuple[int, ConsumerRecord]]:
        """Records of each partition ``p`` from ``gaps[p][0]`` up to ``gaps[p][1]``, from the topic.

        A short-lived consumer of its own; at most a few run at once per process.

        Raises:
            ResumeTooOldError: some start offset is no longer on the broker.
            TimeoutError: the broker returned nothing for 15 s.
            KafkaError: the broker failed.
        """
        async with self._catchups:
            consumer = self._consumer_for("leadscore-api-resume")
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await consumer.start()
                    tps = {p: TopicPartition(self.topic, p) for p in gaps}
                    consumer.assign(list(tps.values()))
                    begin = await consumer.beginning_offsets(list(tps.values()))
                lost = {p: begin[tps[p]] for p, (start, _) in gaps.items() if start < begin[tps[p]]}
                if lost:
                    raise ResumeTooOldError(
                        "events from the position on were deleted from the topic (retention): "
                        + ", ".join(f"partition {p} now starts at {o}" for p, o in sorted(lost.items()))
                    )
                for p, (start, _) in gaps.items():
                    consumer.seek(tps[p], start)
                remaining = {p for p, (start, end) in gaps.items() if start < end}
                stalled_at = time.monotonic()
                while remaining:
                    batch = await consumer.getmany(
                        *(tps[p] for p in remaining), timeout_ms=500, max_records=_POLL_MAX_RECORDS
                    )
                    if batch:
                        stalled_at = time.monotonic()
                    elif time.monotonic() - stalled_at > _CATCHUP_STALL_S:
                        raise TimeoutError(
                            f"the broker returned nothing for {_CATCHUP_STALL_S:.0f} s while reading back"
                        )
                    for tp, records in batch.items():
                        end = gaps[tp.partition][1]
                        for record in records:
                            if record.offset >= end:
                                break
                            yield tp.partition, record
                    for p in list(remaining):
                        if await consumer.position(tps[p]) >= gaps[p][1]:
                            remaining.discard(p)
            finally:
                await stop_consumer(consumer)


def _log_crash(task: asyncio.Task[None]) -> None:
    """The feed's task ended other than by cancellation: a bug. /readyz shows it (not connected)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the score feed stopped for good", exc_info=task.exception())


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, keeping aiokafka's internal cancellations out of the caller.

    After a lost connection, aiokafka 0.14's ``stop()`` can raise the ``CancelledError``
    of its own fetch task (cancelled while it slept between retries) into the caller,
    which would end the feed's reconnect loop as if the feed itself were cancelled. Only
    a cancellation of the calling task is passed on.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("aiokafka raised its fetch task's cancellation from stop(); ignored")


async def topic_bounds(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> tuple[list[int], list[int]]:
    """First and end offset of each partition (in partition order), the end from Fetch.

    Tansu's ListOffsets ``latest`` answers short of the end; the Fetch high watermark is
    right (and the same as ListOffsets on Apache Kafka). See ``tansu_compat``.
    """
    begin = await consumer.beginning_offsets(list(tps))
    listed = await consumer.end_offsets(list(tps))
    fetched = await fetch_end_offsets(consumer, {TP(tp.topic, tp.partition): listed[tp] for tp in tps})
    ordered = sorted(tps, key=lambda tp: tp.partition)
    return (
        [begin[tp] for tp in ordered],
        [max(listed[tp], fetched[TP(tp.topic, tp.partition)]) for tp in ordered],
    )


# --- the WebSocket endpoint --------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRequest:
    """What a client asked for in its URL: ``?leads=a,b&grades_only=true&resume=<position>``."""

    subscription: Subscription
    resume: tuple[int, ...] | None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamRequest:
        """Parse the query parameters of ``/v1/stream``.

        Raises:
            StreamRequestError: a parameter is malformed (the message says which).

        Examples:
            >>> StreamRequest.from_query({"leads": "l1", "resume": "v1.0.a"}).resume
            (0, 10)
        """
        subscription = Subscription.parse(query.get("leads"), query.get("grades_only"))
        resume_text = query.get("resume")
        resume = decode_position(resume_text) if resume_text else None
        return cls(subscription, resume)


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """Live score events; protocol in ``docs/websocket.md``. Needs a key with scope ``read``."""
    await websocket.accept()
    feed: ScoreFeed = websocket.app.state.ctx.feed
    try:
        key = await authenticate(websocket, "read")
    except ApiError as exc:
        await _refuse(websocket, CLOSE_POLICY_VIOLATION, exc.code, exc.message)
        return
    try:
        request = StreamRequest.from_query(websocket.query_params)
    except StreamRequestError as exc:
        await _refuse(websocket, CLOSE_POLICY_VIOLATION, exc.code, exc.message)
        return
    if not feed.positioned.is_set():
        try:
            await asyncio.wait_for(feed.positioned.wait(), _READY_WAIT_S)
        except TimeoutError:
            await _refuse(websocket, CLOSE_TRY_AGAIN_LATER, "feed_unavailable",
                          "this API process is not connected to the broker yet; retry shortly")
            return
    client = FeedClient(request.subscription, feed.settings.ws_queue_size, key.name)
    try:
        plan = feed.hub.attach(client, request.resume)
    except FeedFullError as exc:
        await _refuse(websocket, CLOSE_TRY_AGAIN_LATER, "too_many_connections", str(exc))
        return
    sender = asyncio.create_task(_send(websocket, feed, client, plan), name="ws-send")
    receiver = asyncio.create_task(_receive(websocket, feed, client), name="ws-receive")
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a bug in either surfaces here (and in the log)
    finally:
        feed.hub.detach(client)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    """Tell the client why in an ``error`` message, then close with ``code``."""
    try:
        await websocket.send_text(
            orjson.dumps({"type": "error", "code": error, "message": message}).decode()
        )
        await websocket.close(code, reason=error[:120])
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass  # it left first: nothing to tell


def _hello(feed: ScoreFeed, client: FeedClient, plan: ResumePlan) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "topic": feed.topic,
        "position": encode_position(plan.position),
        "subscription": client.subscription.describe(),
        "resume": encode_position(plan.resume) if plan.resume is not None else None,
        "replay": plan.source,
        "queue_size": client.queue_size,
        "drop_policy": "drop-oldest",
    }


async def _send(websocket: WebSocket, feed: ScoreFeed, client: FeedClient, plan: ResumePlan) -> None:
    """The connection's only writer: hello, what it missed, then live events as they come."""
    try:
        await websocket.send_text(orjson.dumps(_hello(feed, client, plan)).decode())
        if plan.resume is not None:
            await _replay(websocket, feed, client, plan)
        while True:
            frames = client.take()
            if not frames:
                if client.closed:
                    return
                await client.wait()
                continue
            for frame in frames:
                await websocket.send_text(frame)
            client.sent += len(frames)
            feed.delivered += len(frames)
    except (WebSocketDisconnect, WebSocketDisconnected):
        return


async def _replay(websocket: WebSocket, feed: ScoreFeed, client: FeedClient, plan: ResumePlan) -> None:
    """Send what a resuming client missed (topic read-back, then the ring), or say why not."""
    resume = plan.resume
    if resume is None:
        return
    hub = feed.hub
    if plan.problem is None and plan.check_end:
        try:
            end = feed.known_end()
            if any(r > e for r, e in zip(resume, end)):
                end = await feed.end_offsets()
            if any(r > e for r, e in zip(resume, end)):
                plan.problem = ("invalid", "the position is past the end of the topic: it is from "
                                "another deployment, or the topic was recreated")
        except (KafkaError, OSError, TimeoutError, TansuCompatError, FeedTopicMissingError) as exc:
            plan.problem = ("unavailable", f"the broker could not be asked for the topic's end ({exc!r})")
    sent = 0
    if plan.problem is None and plan.gaps:
        vector = list(resume)
        try:
            async with aclosing(feed.read_back(plan.gaps)) as records:
                async for partition, record in records:
                    vector[partition] = record.offset + 1
                    event = decode_score(record.value)
                    if event is None or record.value is None:
                        continue
                    entry = make_entry(partition, record.offset, tuple(vector), record.value, event)
                    if client.subscription.matches(entry):
                        await websocket.send_text(entry.frame)
                        sent += 1
        except ResumeTooOldError as exc:
            plan.problem = ("too_old", str(exc))
        except (KafkaError, OSError, TimeoutError, TansuCompatError) as exc:
            plan.problem = ("unavailable", f"reading the topic back failed ({exc!r})")
    if plan.problem is not None:
        hub.resumes["failed"] += 1
        hub.give_up_resume(client, plan)
        reason, why = plan.problem
        now = encode_position(hub.vector())
        await websocket.send_text(orjson.dumps({
            "type": "resume_failed",
            "reason": reason,
            "position": now,
            "message": f"cannot resume from {encode_position(resume)}: {why}. Events you missed "
            "are not coming: refetch the scores you show with GET /v1/leads/{lead_id}/score (or "
            "the leaderboard); live events follow from here",
        }).decode())  # fmt: skip
        log.info("stream resume for %s failed (%s): %s", client.name, reason, why)
        return
    for entry in plan.replay:
        if client.subscription.matches(entry):
            await websocket.send_text(client.frame_of(entry))
            sent += 1
    hub.resumes[plan.source] += 1
    client.sent += sent
    feed.delivered += sent
    await websocket.send_text(orjson.dumps({
        "type": "resumed",
        "source": plan.source,
        "count": sent,
        "position": encode_position(_elementwise_max(resume, plan.position)),
    }).decode())  # fmt: skip


async def _receive(websocket: WebSocket, feed: ScoreFeed, client: FeedClient) -> None:
    """Read the client's messages: ``subscribe`` changes its filter, ``ping`` gets ``pong``."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode(errors="replace")
        try:
            _on_client_message(feed, client, text)
        except StreamRequestError as exc:
            client.say({"type": "error", "code": exc.code, "message": exc.message})


def _on_client_message(feed: ScoreFeed, client: FeedClient, text: str) -> None:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StreamRequestError("invalid_message", "messages must be JSON objects") from None
    if not isinstance(body, dict):
        raise StreamRequestError("invalid_message", "messages must be JSON objects")
    kind = body.get("type")
    if kind == "subscribe":
        subscription = Subscription.parse(body.get("leads"), body.get("grades_only"))
        feed.hub.resubscribe(client, subscription)
        client.say({"type": "subscribed", "subscription": subscription.describe(),
                    "position": encode_position(feed.hub.vector())})
    elif kind == "ping":
        client.say({"type": "pong", "position": encode_position(feed.hub.vector())})
    else:
        raise StreamRequestError(
            "invalid_message", f"unknown message type {kind!r}: send 'subscribe' or 'ping'"
        )
