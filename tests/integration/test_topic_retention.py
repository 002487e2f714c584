"""The topics leadscore creates get their retention from the settings, on the real broker.

Tansu stores ``retention.ms`` and reports it back (DescribeConfigs) but never deletes
anything by it; Apache Kafka applies it. What is checked here is what is stored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from worker_harness import worker_settings

from leadscore.infra.kafka.client import client_options, ensure_topics
from leadscore.infra.kafka.retention import DAY_MS, stored_retentions
from leadscore.infra.webhooks.delivery import ensure_dead_letter_topic

pytestmark = pytest.mark.integration


async def test_created_topics_get_their_retention_and_existing_ones_a_warning(
    kafka_bootstrap: str,
    redis_url: str,
    name_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = worker_settings(
        name_prefix, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
        model_dir=tmp_path, webhook_dead_letter_topic=f"{name_prefix}webhooks.dead-letter.v1",
        topic_retention_days=30, dead_letter_retention_days=7, training_retention_days=0,
        erasures_retention_days=7,
    )  # fmt: skip
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        # the scores topic is there already, kept for an hour by someone else's choice
        await admin.create_topics(
            [NewTopic(settings.scores_topic, 4, 1, topic_configs={"retention.ms": "3600000"})]
        )
        with caplog.at_level(logging.WARNING, logger="leadscore.infra.kafka.retention"):
            await ensure_topics(settings)
            await ensure_dead_letter_topic(settings)
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1, warnings
        assert (
            settings.scores_topic in warnings[0]
            and "LEADSCORE_TOPIC_RETENTION_DAYS" in (warnings[0])
        )
        assert "0.0416667 days" in warnings[0] and "30 days" in warnings[0], warnings[0]

        stored = await stored_retentions(
            admin,
            [
                settings.dead_letter_topic, settings.webhook_dead_letter_topic,
                settings.scores_topic, settings.features_topic, settings.training_topic,
                settings.erasures_topic, settings.activity_topic,
            ],
        )  # fmt: skip
        # the input topics are the producers': none set (Tansu), or the broker's default
        assert stored.pop(settings.activity_topic) in (None, "604800000")
        assert stored == {
            settings.dead_letter_topic: str(7 * DAY_MS),
            settings.webhook_dead_letter_topic: str(7 * DAY_MS),
            settings.scores_topic: "3600000",  # existing: left as it was
            settings.features_topic: str(30 * DAY_MS),
            settings.training_topic: "-1",  # the training set: kept
            settings.erasures_topic: str(7 * DAY_MS),
        }
        described = await admin.describe_topics([settings.erasures_topic])
        assert len(described[0]["partitions"]) == settings.topic_partitions

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore.infra.kafka.retention"):
            await ensure_topics(settings)  # a second start: only the topic that differs
        assert [settings.scores_topic in r.getMessage() for r in caplog.records] == [True]
    finally:
        await admin.close()
