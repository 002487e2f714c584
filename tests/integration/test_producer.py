"""The publisher on a real broker: events land on their topics, keyed by lead, at the rate asked."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from leadscore.infra.kafka.publish import PublishStats, publish
from leadscore.schemas.decode import EventKind, kind_of
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import simulate

_PARTITIONS = 4
_RECEIVE_TIMEOUT_S = 30.0


@pytest.fixture
async def settings(kafka_bootstrap: str, name_prefix: str) -> Settings:
    """Settings whose three input topics are fresh and created up front for this test."""
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        activity_topic=f"{name_prefix}leads.activity.v1",
        profile_topic=f"{name_prefix}leads.profile.v1",
        outcome_topic=f"{name_prefix}leads.outcome.v1",
        topic_partitions=_PARTITIONS,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, _PARTITIONS, 1) for t in s.input_topics])
    finally:
        await admin.close()
    return s


def _events(n: int) -> list[dict]:
    """``n`` simulated events whose times are in the past (the span ends now)."""
    events = list(simulate(SimConfig(n_leads=200, span_days=30.0, seed=9), now=datetime.now(UTC)))
    assert len(events) >= n
    return events[:n]


async def _consume(settings: Settings, expected: int) -> list:
    """Every record of the input topics (no consumer group: partitions assigned directly)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    consumer.assign(
        [TopicPartition(t, p) for t in settings.input_topics for p in range(_PARTITIONS)]
    )
    records: list = []
    deadline = time.monotonic() + _RECEIVE_TIMEOUT_S
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        # Anything beyond the expected count would be a duplicate: give it a moment to show.
        extra = await consumer.getmany(timeout_ms=500)
        records.extend(r for rs in extra.values() for r in rs)
    finally:
        await consumer.stop()
    return records


async def test_paced_events_arrive_on_their_topics_keyed_by_lead(settings: Settings) -> None:
    events = _events(2_000)
    rate = 1_000.0
    stats = await publish(events, settings, rate)

    assert stats.sent == 2_000
    assert sum(stats.by_topic.values()) == 2_000
    # The schedule takes 2 s; allow for start-up and the final flush, and a slow CI box.
    assert 1.8 <= stats.elapsed_s <= 5.0, stats
    assert 400 <= stats.rate_per_s <= 1_100, stats

    records = await _consume(settings, len(events))
    assert len(records) == len(events)
    topic_of_kind = {
        EventKind.ACTIVITY: settings.activity_topic,
        EventKind.PROFILE: settings.profile_topic,
        EventKind.OUTCOME: settings.outcome_topic,
    }
    by_id = {e["id"]: e for e in events}
    partition_of_lead: dict[str, set[int]] = defaultdict(set)
    for record in records:
        event = orjson.loads(record.value)
        assert event == by_id[event["id"]]
        assert record.key == event["subject"].encode()
        assert record.topic == topic_of_kind[kind_of(event["type"])]
        partition_of_lead[event["subject"]].add(record.partition)
    assert set(stats.by_topic) == set(settings.input_topics)
    # Co-partitioning: a lead's activity, profile and outcome share one partition number.
    assert all(len(parts) == 1 for parts in partition_of_lead.values())
    # The rate is visible in the records' own timestamps (set when each was sent).
    stamps = sorted(r.timestamp for r in records)
    spread_s = (stamps[-1] - stamps[0]) / 1000
    assert 1.6 <= spread_s <= 4.5, spread_s


async def test_unpaced_publish_stops_at_max_events_and_reports_progress(settings: Settings) -> None:
    events = _events(3_000)
    seen: list[PublishStats] = []
    stats = await publish(
        iter(events), settings, None, max_events=2_500, progress=lambda s: seen.append(s),
        progress_interval_s=0.0,
    )  # fmt: skip
    assert stats.sent == 2_500
    assert stats.rate_per_s > 1_000
    assert seen and seen[-1].sent <= 2_500


async def test_async_source_and_duration_limit(settings: Settings) -> None:
    async def forever():  # an unbounded async source, e.g. live traffic
        for event in _events(3_000) * 100:
            yield event

    started = asyncio.get_running_loop().time()
    stats = await publish(forever(), settings, 2_000.0, duration_s=1.0)
    took = asyncio.get_running_loop().time() - started
    assert 1.0 <= took <= 2.5
    assert 1_800 <= stats.sent <= 2_300


async def test_unknown_event_type_is_refused_before_sending(settings: Settings) -> None:
    bad = {**_events(1)[0], "type": "lead.teleported"}
    with pytest.raises(ValueError, match="lead.teleported"):
        await publish([bad], settings, None)
