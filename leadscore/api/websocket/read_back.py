"""Reading the scores topic back, for WebSocket clients resuming from before the fan-out's ring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from leadscore.infra.kafka.client import stop_consumer

#: How long a read-back may go without the broker returning anything before it is given up.
_CATCHUP_STALL_S = 15.0
_CONNECT_TIMEOUT_S = 30.0
_POLL_MAX_RECORDS = 500


class ResumeTooOldError(RuntimeError):
    """The events after a resume position are no longer on the broker."""


async def read_back(
    consumer_for: Callable[[str], AIOKafkaConsumer],
    catchups: asyncio.Semaphore,
    topic: str,
    gaps: Mapping[int, tuple[int, int]],
) -> AsyncGenerator[tuple[int, ConsumerRecord]]:
    """Records of each partition ``p`` from ``gaps[p][0]`` up to ``gaps[p][1]``, from the topic.

    A short-lived consumer of its own; at most a few run at once per process.

    Raises:
        ResumeTooOldError: some start offset is no longer on the broker.
        TimeoutError: the broker returned nothing for 15 s.
        KafkaError: the broker failed.
    """
    async with catchups:
        consumer = consumer_for("leadscore-api-resume")
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await consumer.start()
                tps = {p: TopicPartition(topic, p) for p in gaps}
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
