"""The score feed: one group-less consumer of ``leads.scores.v1`` per API process.

It reads every partition of the scores topic from its end (so every replica sees every
event), decodes each record once, and hands it to the listeners (the score cache) and
to the fan-out (:class:`~leadscore.api.websocket.hub.FanOut`). It never awaits a socket,
so a slow client only ever delays itself. When the broker stops answering it
reconnects where it stopped; it also reads older events back from the topic for
clients resuming from before the fan-out's ring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from leadscore.api.websocket.hub import FanOut
from leadscore.api.websocket.protocol import elementwise_max, encode_position
from leadscore.api.websocket.read_back import read_back
from leadscore.infra.kafka.client import new_consumer, stop_consumer
from leadscore.infra.kafka.offsets import EndOffsetProbeError, fetch_end_offsets, topic_bounds
from leadscore.infra.privacy.lead_ids import LeadIds, decode_score
from leadscore.infra.retry import Backoff, forever
from leadscore.schemas.privacy import is_erased_event
from leadscore.settings import Settings

log = logging.getLogger(__name__)

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


class FeedTopicMissingError(RuntimeError):
    """The scores topic does not exist (yet), or the feed is not connected."""


# --- the consumer ------------------------------------------------------------------------------


class ScoreFeed:
    """Consumes ``leads.scores.v1`` from its end and hands every event to listeners and clients.

    :meth:`start` returns at once; the consumer connects in the background, and
    reconnects with growing pauses (up to 30 s) whenever the broker stops answering,
    resuming where it stopped, so connected clients miss nothing. :attr:`connected` says
    whether it is connected and positioned (``/readyz``).

    Args:
        settings: configuration (topic, broker, ``ws_*`` limits).
        ids: turns the pseudonyms on the topic back into lead ids (``None``: the topic
            carries lead ids). An event whose lead was erased since is not shown.
    """

    def __init__(self, settings: Settings, ids: LeadIds | None = None) -> None:
        self.settings = settings
        self.ids = ids
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
        self.interrupted_since: float | None = None  # epoch s, while the broker is lost
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
        def lost(exc: BaseException) -> None:
            self.reconnects += 1

        await forever(
            self._consume,
            f"score feed on {self.topic} (it resumes where it stopped)",
            retry_on=(
                KafkaError,
                OSError,
                EndOffsetProbeError,
                TimeoutError,
                FeedTopicMissingError,
            ),
            backoff=Backoff(1.0, _MAX_BACKOFF_S),
            log=log,
            on_failure=lost,
        )

    def _consumer_for(self, client_id: str) -> AIOKafkaConsumer:
        return new_consumer(
            self.settings,  # no group: every API process reads every partition
            auto_offset_reset="none",  # out of range: _position decides, not aiokafka
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            client_id=client_id,
        )

    def interruption(self) -> dict[str, Any]:
        """The ``feed_interrupted`` message (for every client, and for one that connects meanwhile)."""
        since = self.interrupted_since or time.time()
        return {
            "type": "feed_interrupted",
            "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
            "message": "this API process lost the broker; score events resume, none missed, "
            "when it is back (a feed_restored message follows)",
        }

    async def _consume(self, on_positioned: Callable[[], None]) -> None:
        consumer = self._consumer_for("leadscore-api-feed")
        stopping = False
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await consumer.start()
                tps = await self._position(consumer)
            self._consumer = consumer
            self.connected = True
            self.positioned.set()
            on_positioned()
            if self.interrupted_since is not None:
                self.hub.say_all(
                    {
                        "type": "feed_restored",
                        "interrupted_s": round(time.time() - self.interrupted_since, 1),
                        "position": encode_position(self.hub.vector()),
                    }
                )
                self.interrupted_since = None
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
        except asyncio.CancelledError:
            stopping = True  # the API shuts down: not an interruption to announce
            raise
        finally:
            if self.connected and not stopping:
                self.interrupted_since = time.time()
                self.hub.say_all(self.interruption())
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
                log.warning(
                    "%s now has %d partitions (had %d): the feed starts at its end",
                    self.topic,
                    len(tps),
                    hub.partitions,
                )
            hub.reset(end)
        else:
            start = list(hub.vector())
            for p in range(len(tps)):
                if start[p] > end[p]:
                    log.warning(
                        "%s:%d ends at %d, before the feed's position %d: the topic was "
                        "recreated? The feed starts at its end",
                        self.topic,
                        p,
                        end[p],
                        start[p],
                    )
                    start[p] = end[p]
                elif start[p] < begin[p]:
                    log.warning(
                        "%s:%d starts at %d, after the feed's position %d: events were "
                        "deleted before they were read",
                        self.topic,
                        p,
                        begin[p],
                        start[p],
                    )
                    start[p] = begin[p]
            if tuple(start) != hub.vector():
                hub.reset(start)
        for tp in tps:
            consumer.seek(tp, hub.vector()[tp.partition])
        self._ends = tuple(end)
        self.lag = sum(e - n for e, n in zip(end, hub.vector()))
        log.info("score feed reading %s from %s", self.topic, encode_position(hub.vector()))
        return tps

    async def readable(self, event: dict[str, Any] | None) -> dict[str, Any] | None:
        """A decoded score event with its lead id, or ``None`` if its lead was erased since."""
        if event is None or self.ids is None:
            return event
        return (await self.ids.resolve_events([event]))[0]

    async def _handle(self, batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Decode each record once, give it to the listeners and the fan-out.

        Yields to the event loop every few records so senders of fast clients empty
        their queues during a burst instead of overflowing.
        """
        hub = self.hub
        done = 0
        decoded = [
            (tp, record, decode_score(record.value))
            for tp, records in batch.items()
            for record in records
        ]
        events = [event for _, _, event in decoded]
        if self.ids is not None:
            events = await self.ids.resolve_events(events)
        erased: set[str] = set()
        for (tp, record, seen), event in zip(decoded, events, strict=True):
            partition = tp.partition
            if event is None:
                hub.skip(partition, record.offset)
                if seen is None and record.value is not None:
                    self.undecodable += 1
                    log.warning(
                        "score feed: record %s:%d@%d is not a score event; skipped",
                        tp.topic,
                        partition,
                        record.offset,
                    )
                continue  # a tombstone, or a score of a lead erased since
            if is_erased_event(event):
                erased.add(event["lead_id"])
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # a listener's bug must not stop the feed for everyone
                    self.listener_errors += 1
                    log.exception(
                        "score feed listener %r failed on %s:%d@%d",
                        listener,
                        tp.topic,
                        partition,
                        record.offset,
                    )
            raw = record.value if event is seen else orjson.dumps(event)
            hub.publish(partition, record.offset, raw, event)
            done += 1
            if done % self._chunk == 0:
                await asyncio.sleep(0)
        if erased:
            hub.forget_leads(erased)

    async def _probe(self, consumer: AIOKafkaConsumer) -> None:
        """Ask the broker for the end offsets: proves it answers, and measures the lag."""
        vector = self.hub.vector()
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            ends = await fetch_end_offsets(
                consumer, {TopicPartition(self.topic, p): o for p, o in enumerate(vector)}
            )
        self._ends = tuple(ends[TopicPartition(self.topic, p)] for p in range(len(vector)))
        self.lag = sum(max(0, e - n) for e, n in zip(self._ends, self.hub.vector()))

    # resumes -----------------------------------------------------------------------------------

    async def end_offsets(self) -> tuple[int, ...]:
        """The topic's end offsets now, asked through the feed's consumer.

        Raises:
            FeedTopicMissingError: the feed is not connected.
            TimeoutError, KafkaError, EndOffsetProbeError: the broker did not answer.
        """
        consumer = self._consumer
        if consumer is None:
            raise FeedTopicMissingError("the score feed is not connected to the broker")
        vector = self.hub.vector()
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            ends = await fetch_end_offsets(
                consumer, {TopicPartition(self.topic, p): o for p, o in enumerate(vector)}
            )
        self._ends = tuple(ends[TopicPartition(self.topic, p)] for p in range(len(vector)))
        return self._ends

    def known_end(self) -> tuple[int, ...]:
        """The highest end offsets seen (by the last probe, or by reading)."""
        vector = self.hub.vector()
        if len(self._ends) != len(vector):
            return vector
        return elementwise_max(self._ends, vector)

    def read_back(
        self, gaps: Mapping[int, tuple[int, int]]
    ) -> AsyncGenerator[tuple[int, ConsumerRecord]]:
        """Records of each partition ``p`` from ``gaps[p][0]`` up to ``gaps[p][1]``, from the
        topic (:func:`~leadscore.api.websocket.read_back.read_back`)."""
        return read_back(self._consumer_for, self._catchups, self.topic, gaps)


def _log_crash(task: asyncio.Task[None]) -> None:
    """The feed's task ended other than by cancellation: a bug. /readyz shows it (not connected)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the score feed stopped for good", exc_info=task.exception())
