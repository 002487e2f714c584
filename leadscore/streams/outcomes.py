"""Held outcomes: a lead's outcome waits in Redis until the worker has read the lead's activity.

The :class:`~leadscore.models.batch.outcome_clock.OutcomeClock` says when an outcome is
ready; this module gives it the consumer's progress, keeps the outcomes it defers in the
Redis hash ``outcomes:held`` (written with the batch, before its offsets are committed)
and republishes them to their own partition once they are due: after every batch (at
most twice a second) and every second by the timer in :mod:`leadscore.streams.scoring`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

import faust
import orjson
from faust.transport.consumer import Consumer
from faust.types import TP

from leadscore.infra.redis_store import ScoreStore
from leadscore.models.batch.outcome_clock import OutcomeClock, released
from leadscore.models.batch.processing import BatchResult
from leadscore.models.batch.records import InputRecord
from leadscore.settings import Settings

log = logging.getLogger(__name__)

#: Shortest time between two looks at the held outcomes after batches, in seconds.
_RELEASE_EVERY_S = 0.5


class HeldOutcomes:
    """The worker's outcome clock and the outcomes it holds (see the module notes)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.outcome_topic = settings.outcome_topic
        self.key = f"{settings.redis_prefix}outcomes:held"
        self.clock = OutcomeClock(
            feature_topics=(settings.activity_topic, settings.profile_topic),
            progress=self._progress,
            max_delay_s=settings.label_max_delay_s,
        )
        self._last_look = 0.0
        # The timer and the agent both release; one at a time, or both could read an entry
        # before either deletes it and republish it twice (then counted as a repeat).
        self._releasing = asyncio.Lock()

    def _progress(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        """The group's committed offset and the end offset of a topic partition."""
        tp = TP(topic, partition)
        consumer = cast(Consumer, self.app.consumer)
        committed = consumer._committed_offset.get(tp)
        return committed, self.app.consumer.highwater(tp)

    def hold(self, records: Sequence[InputRecord], result: BatchResult) -> dict[str, bytes]:
        """The batch's deferred outcomes, as fields of the Redis hash."""
        return dict(self.clock.hold(records[index], t) for index, t in result.deferrals)

    async def save(self, store: ScoreStore, held: dict[str, bytes]) -> None:
        """Keep ``held`` in Redis (part of the batch's write: before its offsets commit)."""
        if held:
            await store.client.hset(self.key, mapping=cast(Mapping[Any, bytes], held))

    async def after_batch(self, store: ScoreStore, held: dict[str, bytes]) -> None:
        """Release what is due, when the batch held outcomes or at most twice a second."""
        if held or self._look_due():
            await quietly(self.release(store), "release held outcomes")

    def _look_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_look < _RELEASE_EVERY_S:
            return False
        self._last_look = now
        return True

    async def release(self, store: ScoreStore) -> None:
        """Republish the held outcomes of this worker's partitions that are due."""
        async with self._releasing:
            await self._release(store)

    async def _release(self, store: ScoreStore) -> None:
        held = await store.client.hgetall(self.key)
        if not held:
            return
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # the consumer is not started yet
            return
        mine = {tp.partition for tp in assigned if tp.topic == self.outcome_topic}
        for field, raw in held.items():
            entry = orjson.loads(raw)
            if entry["partition"] not in mine or not self.clock.due(entry):
                continue
            topic, partition, key, value, headers = released(entry)
            await self.app.producer.send_and_wait(topic, key, value, partition, None, headers)
            await store.client.hdel(self.key, field)


async def quietly(work: Awaitable[None], what: str) -> None:
    """Run ``work``; on an outage, log and go on (it is tried again on the next tick)."""
    try:
        await work
    except Exception as exc:
        log.warning("could not %s (%r); trying again shortly", what, exc)
