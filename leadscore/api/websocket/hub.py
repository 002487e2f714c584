"""The fan-out of ``/v1/stream``: client queues, the ring of recent events, and the hub.

Pure bookkeeping, no sockets and no Kafka: the feed's consumer hands each event to
:class:`FanOut`, which keeps a ring of recent events for resumes and puts the event in
the bounded queue (:class:`FeedClient`) of every client that wants it, without ever
awaiting. When a client's queue is full the oldest queued event is dropped and the
client is told how many it lost and where to resume from.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadscore.api.websocket.protocol import (
    ScoreEntry,
    Subscription,
    elementwise_max,
    encode_position,
    make_entry,
    score_frame,
)


class FeedFullError(RuntimeError):
    """The process already serves ``ws_max_clients`` connections."""


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
        vector = elementwise_max(floor, entry.vector)
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
        return vector if self.floor is None else elementwise_max(self.floor, vector)

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
        """Whether the feed has a position yet (it knows the topic's partitions)."""
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

    def forget_leads(self, lead_ids: set[str]) -> None:
        """These leads were erased: drop their score events from the replay ring (their
        ``lead.erased`` stays, for clients resuming from before it)."""
        ring = self._ring
        kept = [e for e in ring if e.lead_id not in lead_ids or e.erased]
        if len(kept) != len(ring):
            ring.clear()
            ring.extend(kept)

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

    def say_all(self, message: Mapping[str, Any]) -> None:
        """Queue a control message for every connection (see :meth:`FeedClient.say`)."""
        for client in self.clients:
            client.say(message)

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
