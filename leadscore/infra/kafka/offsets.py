"""End offsets a broker really has: from Fetch responses, not only ListOffsets.

Tansu 0.6 answers ListOffsets ``latest`` with the first offset of the last record batch
+ 1, not the log end; the high watermark in its Fetch responses is right. Everything
that needs an end offset (the score feed's position and lag, the model-event listener,
reading a topic to its end, Faust's changelog recovery through
:mod:`leadscore.streams.tansu_compat`) asks :func:`fetch_end_offsets` or :func:`end_offsets`.
On Apache Kafka both answers agree, so this costs one round trip per leader and changes
nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import READ_COMMITTED
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

__all__ = ["EndOffsetProbeError", "end_offsets", "fetch_end_offsets", "topic_bounds"]

#: Bytes asked per partition by the end-offset probe. The probe only needs the response
#: header; on Tansu the answer also holds the one batch that contains offset ``L``.
_PROBE_PARTITION_BYTES = 64 * 1024
_PROBE_ATTEMPTS = 3
_PROBE_BACKOFF_S = 0.2


class EndOffsetProbeError(RuntimeError):
    """The Fetch that verifies end offsets failed for some partitions after retries."""


async def end_offsets(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The end offset of each partition: the larger of ListOffsets and the Fetch high watermark."""
    listed = await consumer.end_offsets(list(tps))
    fetched = await fetch_end_offsets(consumer, listed)
    return {tp: max(listed[tp], fetched[tp]) for tp in tps}


async def topic_bounds(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> tuple[list[int], list[int]]:
    """First and end offset of each partition (in partition order), the end as :func:`end_offsets`."""
    begin = await consumer.beginning_offsets(list(tps))
    ends = await end_offsets(consumer, tps)
    ordered = sorted(tps, key=lambda tp: tp.partition)
    return [begin[tp] for tp in ordered], [ends[tp] for tp in ordered]


async def fetch_end_offsets(
    consumer: AIOKafkaConsumer, start_offsets: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Return each partition's end offset as reported in a Fetch response.

    Sends one Fetch per partition leader, at the given offset (use an offset at or below
    the end, e.g. what ``end_offsets()`` said), with ``max_wait_ms=1``. The answer is the
    high watermark, or the last stable offset when the consumer reads ``read_committed``
    -- the same quantity ListOffsets ``latest`` answers on Apache Kafka. Uses the
    consumer's own connections, so no extra authentication. Positions, fetched records
    and assignment of the consumer are left alone.

    Args:
        consumer: a started aiokafka consumer; it need not be assigned the partitions.
        start_offsets: partition -> offset to fetch at, each at or below the log end.

    Returns:
        partition -> end offset (one past the last offset), for every partition given.

    Raises:
        EndOffsetProbeError: some partitions still failed after 3 attempts (unknown
            leader, connection error, error code in the response).
    """
    client = consumer._client
    isolation_level: int = consumer._fetcher._isolation_level
    found: dict[TopicPartition, int] = {}
    errors: dict[TopicPartition, str] = {}
    remaining = dict(start_offsets)
    for attempt in range(_PROBE_ATTEMPTS):
        if not remaining:
            break
        if attempt:
            await client.force_metadata_update()
            await asyncio.sleep(_PROBE_BACKOFF_S * attempt)
        by_leader: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
        for tp, offset in remaining.items():
            leader = client.cluster.leader_for_partition(TopicPartition(tp.topic, tp.partition))
            if leader is None or leader < 0:
                errors[tp] = f"no known leader (metadata says {leader!r})"
            else:
                by_leader[leader][tp] = offset
        answers = await asyncio.gather(
            *(
                _probe_leader(client, node, offsets, isolation_level)
                for node, offsets in by_leader.items()
            )
        )
        for node_found, node_errors in answers:
            found.update(node_found)
            errors.update(node_errors)
        remaining = {tp: offset for tp, offset in remaining.items() if tp not in found}
    if remaining:
        detail = "; ".join(f"{tp.topic}:{tp.partition}: {errors.get(tp, '?')}" for tp in remaining)
        raise EndOffsetProbeError(
            f"could not read the end offset of {len(remaining)} partition(s) from a Fetch "
            f"after {_PROBE_ATTEMPTS} attempts: {detail}. Table recovery needs it on Tansu, "
            "whose ListOffsets answer is short; check the broker is up and retry."
        )
    return found


async def _probe_leader(
    client: Any, node_id: int, offsets: Mapping[TopicPartition, int], isolation_level: int
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, str]]:
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp, offset in offsets.items():
        by_topic[tp.topic].append((tp.partition, offset, _PROBE_PARTITION_BYTES))
    request = FetchRequest(
        # max_wait_ms: 1, not 0 -- Tansu answers a max_wait_ms=0 Fetch with no partitions
        # at all. With min_bytes=0 Kafka answers at once; Tansu waits out the 1 ms.
        1,
        0,  # min_bytes
        _PROBE_PARTITION_BYTES * len(offsets),
        isolation_level,
        list(by_topic.items()),
    )
    try:
        response = await client.send(node_id, request)
    except KafkaError as exc:
        reason = f"Fetch to node {node_id} failed: {exc!r}"
        return {}, {tp: reason for tp in offsets}
    found: dict[TopicPartition, int] = {}
    errors: dict[TopicPartition, str] = {}
    # Same layout aiokafka's Fetcher reads: (partition, error_code, high_watermark,
    # *rest), where rest[0] is the last stable offset from Fetch v4 on.
    for topic, partitions in response.topics:
        for partition, error_code, high_watermark, *rest in partitions:
            tp = TopicPartition(topic, partition)
            if error_code:
                errors[tp] = f"{for_code(error_code).__name__} from node {node_id}"
            elif isolation_level == READ_COMMITTED and response.API_VERSION >= 4:
                found[tp] = rest[0]
            else:
                found[tp] = high_watermark
    for tp in offsets:
        if tp not in found and tp not in errors:
            errors[tp] = f"node {node_id} left the partition out of its Fetch answer"
    return found, errors


def check_fetch_request_api() -> None:
    """Raise :class:`EndOffsetProbeError` unless aiokafka's ``FetchRequest`` is the builder this module sends."""
    params = list(inspect.signature(FetchRequest).parameters)
    expected = ["max_wait_time", "min_bytes", "max_bytes", "isolation_level", "topics"]
    if params[: len(expected)] != expected:
        raise EndOffsetProbeError(
            "aiokafka.protocol.fetch.FetchRequest takes "
            f"{params!r}, expected it to start with {expected!r} (aiokafka 0.14 style); "
            "the end-offset fix needs updating for this aiokafka version"
        )
