"""Plain Kafka plumbing shared by the worker, the API, the CLI jobs and the tests."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from leadscore.infra.kafka.offsets import end_offsets
from leadscore.infra.kafka.retention import topic_configs, warn_on_retention
from leadscore.infra.log_repeats import quiet_repeats
from leadscore.settings import Settings

log = logging.getLogger(__name__)


class TopicLayoutError(RuntimeError):
    """Existing topics do not have the layout the worker needs."""


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka connection options (bootstrap, security) from the settings."""
    # Every process that talks to the broker (the worker too: ensure_topics comes first):
    # an outage logs once a minute. The filter sits on aiokafka's loggers, Faust's clients too.
    quiet_repeats()
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context()
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def new_consumer(
    settings: Settings, *topics: str, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """An aiokafka consumer of ``topics`` on the settings' brokers, with their security options.

    Every consumer in leadscore is made here. Without ``group_id`` it reads as an outsider:
    it commits nothing (``enable_auto_commit`` off) and is assigned what it asks for.
    ``options`` are aiokafka's (``auto_offset_reset``, ``fetch_max_wait_ms``, ...).
    """
    options.setdefault("enable_auto_commit", group_id is not None)
    return AIOKafkaConsumer(*topics, **client_options(settings), group_id=group_id, **options)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, keeping aiokafka's internal cancellations out of the caller.

    After a lost connection, aiokafka 0.14's ``stop()`` can raise the ``CancelledError``
    of its own fetch task (cancelled while it slept between retries) into the caller,
    which would end a reconnect loop (the API's score feed, a worker's model-event
    listener) as if its task itself were cancelled. Only a cancellation of the calling
    task is passed on.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("aiokafka raised its fetch task's cancellation from stop(); ignored")


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Every topic leadscore publishes or consumes, with its partition count.

    All lead-keyed topics share one count, so a lead's events, state and scores
    meet on the same partition number. Model events are few: one partition.
    """
    lead_keyed = (
        *settings.input_topics,
        settings.scores_topic,
        settings.dead_letter_topic,
        settings.features_topic,
        settings.training_topic,
        settings.erasures_topic,  # co-partitioned with the inputs: read by the same agent
    )
    layout = {name: settings.topic_partitions for name in lead_keyed}
    layout[settings.model_events_topic] = 1
    layout[settings.drift_topic] = 1
    return layout


async def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create the topics that are missing, and check the input topics agree on partitions.

    Topics are created up front with the partition count we mean: brokers that
    auto-create topics pick their own count, and some cannot add partitions later. Those
    that hold lead data get their retention from the settings
    (:mod:`leadscore.infra.kafka.retention`); for existing ones a differing retention is
    logged, not changed.

    Returns:
        The partition count of each topic, as found or created.

    Raises:
        TopicLayoutError: if the input topics exist with different partition counts
            (the per-lead table needs them co-partitioned), or with another count than
            ``settings.topic_partitions``.
    """
    wanted = topic_partitions(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=n,
                replication_factor=settings.topic_replication,
                topic_configs=topic_configs(settings, name),
            )
            for name, n in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another process won the race
                pass
            log.info("created topics %s", ", ".join(t.name for t in missing))
        await warn_on_retention(admin, settings, existing)  # once, at start; never altered
        described = await admin.describe_topics(list(wanted))
        found = {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
    inputs = {name: found.get(name) for name in (*settings.input_topics, settings.erasures_topic)}
    if len(set(inputs.values())) != 1:
        raise TopicLayoutError(
            f"input topics must have the same number of partitions, found {inputs}; "
            "recreate them, or set LEADSCORE_*_TOPIC to topics that agree"
        )
    (count,) = set(inputs.values())
    if count != settings.topic_partitions:
        raise TopicLayoutError(
            f"the input topics have {count} partitions but LEADSCORE_TOPIC_PARTITIONS is "
            f"{settings.topic_partitions}: set LEADSCORE_TOPIC_PARTITIONS={count} (the state "
            "table and the partition of each lead follow it)"
        )
    return found


async def read_topic(settings: Settings, topic: str, *, timeout_s: float = 120.0) -> list[bytes]:
    """Every record value of ``topic``, from the beginning to the end as of the call.

    No consumer group (nothing is committed). The end is taken from Fetch responses as
    well as ListOffsets, whose answer is short on Tansu (:mod:`leadscore.infra.kafka.offsets`);
    on Apache Kafka both agree.

    Raises:
        TimeoutError: the end was not reached within ``timeout_s``.
    """
    consumer = new_consumer(settings)
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await end_offsets(consumer, tps)
        values: list[bytes] = []
        async with asyncio.timeout(timeout_s):
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                if not remaining:
                    break
                batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
                for tp, records in batches.items():
                    values.extend(
                        r.value for r in records if r.offset < ends[tp] and r.value is not None
                    )
        return values
    finally:
        await stop_consumer(consumer)
