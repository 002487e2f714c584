"""Faust's offset bookkeeping after a restart with a backlog, with and without the fix.

Drives a real ``faust`` Consumer (no broker) through what its fetcher and recovery do
when the input partitions resume before ``perform_seek()``: records read before the seek,
the seek back to the committed offset, the rest of the batch read before the seek, then
the records fetched again from the committed offset. The ``stock`` cases run Faust's own
``Consumer._new_offset`` and must fail (strict xfail): if they pass, Faust changed.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP, Message

from leadscore.streams.acked_offsets import _new_offset, install_acked_offsets_fix

TOPIC = "leads.activity.v1"
TP0 = TP(TOPIC, 0)
COMMITTED = 100  # the committed offset found at the restart
READ_BEFORE_SEEK = range(100, 150)  # read after the partitions resumed, before perform_seek
REST_OF_BATCH = range(150, 200)  # same fetch, delivered after perform_seek
FETCHED_AGAIN = range(100, 300)  # from the committed offset, after the seek

install_acked_offsets_fix()
_FAUST_NEW_OFFSET = Consumer._new_offset.__wrapped__  # type: ignore[attr-defined]


_FIXED = pytest.param(_new_offset, id="fixed")
_STOCK = pytest.param(_FAUST_NEW_OFFSET, id="stock")
_STOCK_FAILS = pytest.param(
    _FAUST_NEW_OFFSET,
    id="stock",
    marks=pytest.mark.xfail(strict=True, reason="Faust's own _new_offset: the bug"),
)


@pytest.fixture
def consumer(request: pytest.FixtureRequest) -> Iterator[Consumer]:
    """A Consumer of a broker-less app whose ``_new_offset`` is the test's parameter."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app = faust.App("acked-offsets-test", broker="kafka://localhost:1")
        consumer = app.consumer
        app.topics._acking_topics.add(TOPIC)
        consumer._new_offset = types.MethodType(request.param, consumer)  # type: ignore[method-assign]
        yield consumer
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _read(consumer: Consumer, offsets: range, delivered: list[Message]) -> None:
    """What ``Consumer._drain_messages`` does with each fetched record, minus the stream."""
    for offset in offsets:
        r_offset = consumer._read_offset[TP0]
        if r_offset is None or offset >= r_offset:
            if offset - (r_offset or 0) > 1 and r_offset:
                asyncio.get_event_loop().run_until_complete(
                    consumer._add_gap(TP0, r_offset + 1, offset)
                )
            delivered.append(Message(TOPIC, 0, offset, 0.0, 0, None, None, b"{}", None, tp=TP0))
            consumer._read_offset[TP0] = offset
        # else: Faust drops it ("DROPPED MESSAGE ROFF")


def _restart_with_backlog(consumer: Consumer) -> list[Message]:
    """The records the streams get, in order, when recovery seeks after resuming."""
    delivered: list[Message] = []
    _read(consumer, READ_BEFORE_SEEK, delivered)

    async def seek_to_committed() -> dict[TP, int]:
        return {TP0: COMMITTED}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    asyncio.get_event_loop().run_until_complete(consumer.perform_seek())
    _read(consumer, REST_OF_BATCH, delivered)
    _read(consumer, FETCHED_AGAIN, delivered)
    return delivered


def _commit(consumer: Consumer) -> int | None:
    """One at-least-once commit that the broker accepts; the partition's new committed offset."""
    offsets = consumer._filter_committable_offsets([TP0])
    consumer._committed_offset.update(offsets)
    return consumer._committed_offset[TP0]


def _process(consumer: Consumer, messages: list[Message], commit_every: int) -> None:
    for n, message in enumerate(messages, 1):
        consumer.ack(message)
        if n % commit_every == 0:
            _commit(consumer)


@pytest.mark.parametrize("consumer", [_FIXED, _STOCK], indirect=True)
def test_the_restart_delivers_every_record_once_and_one_twice(consumer: Consumer) -> None:
    """The scenario itself (holds on stock Faust too): 100..299, and 199 a second time."""
    offsets = [message.offset for message in _restart_with_backlog(consumer)]
    assert offsets == [*range(100, 200), *range(199, 300)]


@pytest.mark.parametrize("consumer", [_FIXED, _STOCK_FAILS], indirect=True)
def test_committed_offset_reaches_the_end_after_everything_is_processed(
    consumer: Consumer,
) -> None:
    """Stock Faust: ~50 phantom-gap offsets acked twice, each commit advances one of them."""
    _process(consumer, _restart_with_backlog(consumer), commit_every=40)
    commits = [_commit(consumer) for _ in range(3)]
    assert commits[-1] == 300, f"committed offsets of the next commits: {commits}"


@pytest.mark.parametrize("consumer", [_FIXED, _STOCK_FAILS], indirect=True)
def test_no_commit_passes_a_record_not_yet_processed(consumer: Consumer) -> None:
    """Stock Faust commits the whole phantom gap (to 151) at the commit after that."""
    delivered = _restart_with_backlog(consumer)
    _process(consumer, delivered[:3], commit_every=3)  # 100, 101, 102; 103.. still queued
    commits = [_commit(consumer) for _ in range(3)]
    assert commits == [103, 103, 103]


@pytest.mark.parametrize("consumer", [_FIXED, _STOCK], indirect=True)
def test_acks_in_order_commit_exactly_as_faust_does(consumer: Consumer) -> None:
    """No seek, a real gap (offsets 110..114 absent, e.g. transaction markers): same commits."""
    delivered: list[Message] = []
    _read(consumer, range(100, 110), delivered)
    _read(consumer, range(115, 130), delivered)
    assert consumer._gap[TP0]
    committed = []
    for message in delivered:
        consumer.ack(message)
        committed.append(_commit(consumer))
    assert committed == [*range(101, 111), *range(116, 131)]
