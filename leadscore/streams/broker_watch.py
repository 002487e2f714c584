"""Stop the worker, once and clearly, when the broker has lost its topics.

A broker that keeps its data in memory (the embedded Tansu without ``--data-dir``) comes
back from a restart empty: the input topics are gone or recreated empty, the committed
offsets and the state changelog with them. A worker that goes on fetches from offsets
that no longer exist, fails its commits forever and has a table nothing can rebuild; it
would spin and log without end. Every ``LEADSCORE_BROKER_WATCH_S`` the watch reads the end
offset of each input partition; an end offset that goes backwards, or a topic that
disappears, can only mean the data is gone. The watch logs that once, with what to do,
and stops the worker with a non-zero exit (:class:`TopicsLostError`). A broker that is
down is not a loss: the watch waits for it quietly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from leadscore.infra.kafka.client import new_consumer, stop_consumer
from leadscore.infra.kafka.offsets import EndOffsetProbeError, end_offsets
from leadscore.settings import Settings
from leadscore.streams.context import WorkerContext

log = logging.getLogger(__name__)

#: A look that takes longer than this (a client stuck on a broker coming back) is dropped.
_CHECK_TIMEOUT_S = 10.0

#: The app attribute that holds why the watch stopped the worker.
STOP_REASON = "leadscore_stop_reason"

#: Exit status of a worker stopped because the broker lost its topics.
TOPICS_LOST_EXIT = 3


class TopicsLostError(RuntimeError):
    """The broker no longer has records the worker had seen: its topics were lost."""


def lost_partitions(
    seen: Mapping[TopicPartition, int], now: Mapping[TopicPartition, int | None]
) -> list[str]:
    """What went missing: partitions whose end went backwards, or that no longer exist.

    ``now`` maps a partition to its end offset, or ``None`` when its topic is gone.

    Examples:
        >>> tp = TopicPartition("leads.activity.v1", 0)
        >>> lost_partitions({tp: 120}, {tp: 120})
        []
        >>> lost_partitions({tp: 120}, {tp: 0})
        ['leads.activity.v1:0 ended at 120, now at 0']
        >>> lost_partitions({tp: 120}, {tp: None})
        ['leads.activity.v1:0 ended at 120, now gone']
    """
    lost = []
    for tp, before in sorted(seen.items()):
        after = now.get(tp)
        if before > 0 and (after is None or after < before):
            where = "now gone" if after is None else f"now at {after}"
            lost.append(f"{tp.topic}:{tp.partition} ended at {before}, {where}")
    return lost


class BrokerWatch:
    """Remembers how far each input partition reached (its end offsets seen, and what the
    worker read); raises when the broker says it ends before that."""

    def __init__(
        self,
        settings: Settings,
        read_to: Callable[[], Mapping[tuple[str, int], int]] = dict,
    ) -> None:
        self.settings = settings
        self.read_to = read_to  # how far the worker has read each input partition
        self.topics = (settings.activity_topic, settings.profile_topic, settings.outcome_topic)
        self.seen: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def check(self) -> None:
        """One look. Raises :class:`TopicsLostError` on a loss; a broker away is no loss."""
        read_to = dict(self.read_to())  # before asking: records read later may be newer
        try:
            now = await asyncio.wait_for(self._ends(), _CHECK_TIMEOUT_S)
        except (KafkaError, EndOffsetProbeError, OSError, TimeoutError):
            await self.close()  # the broker is away: try again with a new client next time
            return
        for (topic, partition), end in read_to.items():
            tp = TopicPartition(topic, partition)
            self.seen[tp] = max(end, self.seen.get(tp, 0))
            now.setdefault(tp, None)
        lost = lost_partitions(self.seen, now)
        if lost:
            raise TopicsLostError(
                "the broker has lost records this worker had read ("
                + "; ".join(lost[:4])
                + (f"; {len(lost) - 4} more" if len(lost) > 4 else "")
                + "): it was restarted without its data (the embedded broker without "
                "--data-dir keeps everything in memory). The lead states and committed "
                "offsets went with it, so this worker stops. Run a durable broker "
                "(leadscore broker --data-dir DIR) or Apache Kafka; on an empty broker, "
                "start the worker again to begin afresh."
            )
        for tp, now_end in now.items():
            if now_end is not None:
                self.seen[tp] = max(now_end, self.seen.get(tp, 0))

    async def _ends(self) -> dict[TopicPartition, int | None]:
        if self._consumer is None:
            self._consumer = new_consumer(self.settings, request_timeout_ms=5000)
            await self._consumer.start()
        consumer = self._consumer
        await consumer._client.force_metadata_update()  # see topics deleted since last time
        present: list[TopicPartition] = []
        for topic in self.topics:
            for partition in consumer.partitions_for_topic(topic) or ():
                present.append(TopicPartition(topic, partition))
        ends: dict[TopicPartition, int | None] = dict.fromkeys(self.seen, None)
        if present:
            ends.update(await end_offsets(consumer, present))
        return ends

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await asyncio.wait_for(stop_consumer(consumer), _CHECK_TIMEOUT_S)
            except Exception:  # a client of a broker that is gone
                log.debug("closing the broker watch's client failed", exc_info=True)


def attach_broker_watch(app: faust.App, worker: WorkerContext) -> None:
    """Check every ``broker_watch_s``; on a loss, say why once and stop the worker (exit 3)."""
    if worker.settings.broker_watch_s <= 0:
        return
    watch = BrokerWatch(worker.settings, lambda: worker.read_to)

    @app.timer(interval=worker.settings.broker_watch_s)
    async def watch_broker() -> None:
        if getattr(app, STOP_REASON, None) is not None:
            return  # stopping already
        try:
            await watch.check()
        except TopicsLostError as exc:
            log.critical("%s", exc)
            await watch.close()
            # A graceful stop (as on SIGTERM); the runner turns it into this error, exit 3.
            setattr(app, STOP_REASON, exc)
            os.kill(os.getpid(), signal.SIGTERM)
