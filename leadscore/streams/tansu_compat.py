"""Client-side patches that keep Faust table state and input exact (on Tansu, and some on any broker).

Call :func:`install_tansu_compat` once, before the Faust worker starts. Every patch is
idempotent and change nothing observable on Apache Kafka.

1. **End offsets from Fetch, not ListOffsets** (:func:`install_fetch_highwater_fix`).
   Tansu 0.6 answers ListOffsets ``latest`` with the first offset of the last record
   batch + 1, not the log end (18 records, the last batch holding 13..17: it says 14);
   the high watermark in its Fetch responses is right (18). Faust's table recovery reads
   changelog ends only through ``AIOKafkaConsumerThread._highwaters`` (via
   ``Recovery._build_highwaters``, for actives and standbys) and stops restoring there,
   so a restarted worker lost all but the first update of each changelog partition's
   last batch -- for good whenever those events' source offsets were already committed
   (measured: 312 of 12,000 updates, see tests/integration/test_tansu_recovery.py). The
   patch keeps the ListOffsets answer ``L``, sends one Fetch at ``L`` per leader and
   returns ``max(L, high watermark)`` (the last stable offset under ``read_committed``).
   On Kafka ListOffsets already is the high watermark and the Fetch at ``L`` returns no
   records, so the answer is unchanged; the cost is one round trip per leader per
   rebalance.

2. **Commit only after buffered sends are delivered** (:func:`install_commit_flush_fix`).
   At-least-once commits happen in ``Consumer._commit_offsets`` right after
   ``await app.producer.flush()``. Changelog writes are not sent by the table itself:
   ``Table.__setitem__`` queues them in Faust's ``ProducerBuffer`` and a task hands them
   to aiokafka one by one. ``ProducerBuffer.flush()`` gives up after 0.1 s without a
   hand-over (``flush_atmost`` returns on the timeout) and ignores the message being
   handed over; aiokafka's flush after it covers only what aiokafka already holds. With a
   slow send (a full batch waiting on the broker) a commit can cover an event whose
   changelog write is still queued, and a SIGKILL then loses that update. A write that
   fails is only logged (``Topic._on_published``), and the commit goes ahead. The patch
   makes the flush also wait until everything put in the buffer before it began is
   acknowledged, and raise :class:`BufferedSendError` (the worker crashes and replays
   instead of committing) once any buffered message failed. Same on every broker.

3. **Records fetched while streams resume are kept** (:func:`install_resume_order_fix`).
   Faust's recovery cleared the stream queues *after* resuming and seeking the input
   partitions, dropping records fetched in between (a loss on any broker). The queues
   are now cleared before partitions resume.

4. **The worker's fetch wait is its own** (:func:`install_fetch_max_wait`). Faust
   hard-codes 1500 ms; Tansu holds an empty fetch for about half of it, a floor under
   latency. The worker's consumer waits ``LEADSCORE_FETCH_MAX_WAIT_MS`` instead.

5. **Commits keep advancing after a restart with a backlog**
   (:func:`leadscore.streams.acked_offsets.install_acked_offsets_fix`). When recovery
   seeks the resumed input partitions back to their committed offsets, records read
   before the seek become a phantom gap and their offsets end up twice in Faust's acked
   list; its run-of-consecutive-offsets search then advanced the committed offset by one
   per commit (measured: ~1,500 behind on 4 partitions). The next committable offset is
   now computed over a set, and gap offsets count only up to the highest acked offset
   (a phantom gap could let a commit pass queued, unprocessed records). Faust's logic,
   so Apache Kafka is affected too; its own module, as it is not Tansu's.

Not patched, still wrong on Tansu: aiokafka's ``end_offsets()``, ``seek_to_end()`` and
``auto_offset_reset="latest"``; compute lag with
:func:`leadscore.infra.kafka.offsets.end_offsets`. Faust's
exactly-once path is left alone (it reads last stable offsets from fetches already, and
aiokafka's InitProducerId v0 is rejected by Tansu anyway).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import FutureMessage

from leadscore.infra.kafka.offsets import check_fetch_request_api, fetch_end_offsets
from leadscore.streams.acked_offsets import install_acked_offsets_fix

__all__ = [
    "BufferedSendError",
    "TansuCompatError",
    "install_commit_flush_fix",
    "install_fetch_highwater_fix",
    "install_tansu_compat",
]

log = logging.getLogger(__name__)

#: Attribute set on every function this module installs; makes installing idempotent.
_MARK = "__leadscore_tansu_compat__"

#: How often a waiting flush re-checks that the buffer is still running, in seconds.
_FLUSH_POLL_S = 0.5


class TansuCompatError(RuntimeError):
    """A patch in this module cannot be installed or cannot do its job."""


class BufferedSendError(TansuCompatError):
    """A message in Faust's producer buffer was not delivered, so committing is unsafe."""


def install_tansu_compat() -> None:
    """Install the five patches listed in the module docstring; safe to call more than once.

    Call it before the Faust worker starts: the flush patch only sees messages put in
    the producer buffer after it is installed.

    Raises:
        TansuCompatError, EndOffsetProbeError: the installed aiokafka or Faust lacks an API
            the patches use.
    """
    install_fetch_highwater_fix()
    install_commit_flush_fix()
    install_resume_order_fix()
    install_fetch_max_wait()
    install_acked_offsets_fix()


# --- 3. no records dropped when streams resume after recovery ------------------------------


def install_resume_order_fix() -> None:
    """Clear the stream queues *before* partitions resume after a rebalance, never after.

    Faust's recovery (``Recovery._resume_streams`` and the end of ``_restart_recovery``)
    resumes the input partitions, seeks them to their committed offsets, and only then
    calls ``app.flow_control.resume()``, which empties every ``clear_on_resume`` queue:
    the stream queues. Records fetched in between are thrown away unprocessed while
    Faust's read offsets have moved past them, so they are lost, for good once a later
    commit passes them (found by tests/integration/test_worker.py: 538 records dropped on
    one restart with a backlog; Faust's logic, so Apache Kafka is affected too). The
    clearing exists to drop records buffered before the rebalance. The patch does that
    when partitions are resumed while the flow is suspended (a rebalance in progress),
    and makes ``resume()`` itself keep the queues.
    """
    from faust.transport.consumer import Consumer
    from mode.utils.queues import FlowControlEvent

    if getattr(Consumer.resume_partitions, "_leadscore_patched", False):
        return
    resume_partitions = Consumer.resume_partitions

    def resume_partitions_after_clearing(self: Consumer, tps: Any) -> None:
        flow = self.app.flow_control
        if not flow.is_active():  # suspended by the rebalance: drop what came before it
            flow.clear()
        resume_partitions(self, tps)

    def resume_keeping_queues(self: FlowControlEvent) -> None:
        self._suspend.clear()
        self._resume.set()

    resume_partitions_after_clearing._leadscore_patched = True  # type: ignore[attr-defined]
    Consumer.resume_partitions = resume_partitions_after_clearing  # type: ignore[method-assign]
    FlowControlEvent.resume = resume_keeping_queues  # type: ignore[method-assign]


# --- 1. end offsets -----------------------------------------------------------------------


def install_fetch_highwater_fix() -> None:
    """Make Faust's changelog end offsets come from Fetch responses, not ListOffsets.

    Wraps ``AIOKafkaConsumerThread._highwaters``, the one place Faust's table recovery
    reads end offsets. Idempotent.

    Raises:
        EndOffsetProbeError: aiokafka's ``FetchRequest`` is not the builder this code sends.
    """
    current = AIOKafkaConsumerThread._highwaters
    if getattr(current, _MARK, False):
        return
    check_fetch_request_api()
    listed_end_offsets = current

    async def _highwaters(self: AIOKafkaConsumerThread, partitions: list[TP]) -> Mapping[TP, int]:
        listed = await listed_end_offsets(self, partitions)
        if self.consumer.in_transaction:
            # Faust already answers last stable offsets from fetch responses here.
            return listed
        return await _corrected_end_offsets(self._ensure_consumer(), listed)

    setattr(_highwaters, _MARK, True)
    _highwaters.__doc__ = current.__doc__
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]


async def _corrected_end_offsets(
    consumer: AIOKafkaConsumer, listed: Mapping[TP, int]
) -> dict[TP, int]:
    fetched = await fetch_end_offsets(consumer, listed)
    corrected: dict[TP, int] = {}
    for tp, listed_end in listed.items():
        corrected[tp] = max(listed_end, fetched[tp])
        if corrected[tp] != listed_end:
            log.info(
                "end offset of %s:%d is %d per Fetch, ListOffsets said %d (broker bug; using %d)",
                tp.topic, tp.partition, fetched[tp], listed_end, corrected[tp],
            )  # fmt: skip
    return corrected


# --- 4. fetch wait -------------------------------------------------------------------------


def install_fetch_max_wait() -> None:
    """Let the worker's consumer wait ``app.leadscore_fetch_max_wait_ms`` per fetch (idempotent).

    Faust hard-codes 1500 ms. Tansu holds an empty fetch for about half of the wait and
    does not answer early when records arrive, so it is a floor under latency there
    (measured with a plain consumer at 500 events/s, p50: 375 ms at 1500, 138 ms at 500,
    33 ms at 100; docs/performance.md). Apache Kafka answers as soon as records arrive.
    """
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_leadscore_patched", False):
        return

    def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = create(self, transport)
        wait_ms = getattr(self.app, "leadscore_fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts
        return consumer

    create_worker_consumer._leadscore_patched = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


# --- 2. flush before commit ----------------------------------------------------------------


class _Deliveries:
    """Messages put in one ProducerBuffer and not yet acknowledged, plus failures seen."""

    def __init__(self) -> None:
        self.undelivered: set[FutureMessage] = set()
        self.failures: list[tuple[FutureMessage, BaseException]] = []

    def track(self, fut: FutureMessage) -> None:
        self.undelivered.add(fut)
        fut.add_done_callback(self._on_done)

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        self.undelivered.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self.failures.append((fut, fut.exception()))  # type: ignore[arg-type]


_deliveries: weakref.WeakKeyDictionary[ProducerBuffer, _Deliveries] = weakref.WeakKeyDictionary()


def install_commit_flush_fix() -> None:
    """Make ``ProducerBuffer.flush()`` wait for delivery of everything put before it.

    Faust calls that flush right before committing source offsets (at-least-once), before
    table recovery and at shutdown; with the patch a commit never covers an event whose
    buffered changelog write is still unsent, and a failed buffered write stops commits
    (:class:`BufferedSendError`) instead of being skipped. Only the default
    ``producer_threaded=False`` mode is covered; the threaded producer drains its own
    queue in its flush. Idempotent.
    """
    if getattr(ProducerBuffer.flush, _MARK, False):
        return
    original_put = ProducerBuffer.put
    original_flush = ProducerBuffer.flush

    def put(self: ProducerBuffer, fut: FutureMessage) -> None:
        original_put(self, fut)
        if self.app is not None and not self.app.conf.producer_threaded:
            deliveries = _deliveries.get(self)
            if deliveries is None:
                deliveries = _deliveries[self] = _Deliveries()
            deliveries.track(fut)

    async def flush(self: ProducerBuffer) -> None:
        deliveries = _deliveries.get(self)
        waiting = set(deliveries.undelivered) if deliveries else set()
        await original_flush(self)
        if deliveries is None or self.state != "running":
            # Shutting down: Faust's own flush already raised if messages were left.
            return
        await _wait_delivered(self, waiting)
        if deliveries.failures:
            fut, exc = deliveries.failures[0]
            raise BufferedSendError(
                f"{len(deliveries.failures)} buffered message(s) were not delivered, first "
                f"to {fut.message.channel.get_topic_name()!r}: {exc!r}; not committing "
                "offsets past them -- restart the worker to replay from the last commit"
            ) from exc

    for function in (put, flush):
        setattr(function, _MARK, True)
    put.__doc__ = original_put.__doc__
    flush.__doc__ = original_flush.__doc__
    ProducerBuffer.put = put  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]


async def _wait_delivered(buffer: ProducerBuffer, waiting: set[FutureMessage]) -> None:
    pending: set[asyncio.Future[Any]] = {fut for fut in waiting if not fut.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=_FLUSH_POLL_S)
        if pending and buffer.state != "running":
            raise BufferedSendError(
                f"producer buffer stopped ({buffer.state}) with {len(pending)} message(s) "
                "undelivered; not committing offsets past them"
            )
