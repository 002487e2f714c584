"""How long leadscore's own topics keep records: ``retention.ms``, set when it creates them.

Dead letters hold whole refused records and score, feature and training records name leads
by pseudonym: a topic that keeps them forever keeps personal data forever
(docs/privacy.md). Each such topic gets the retention its setting names when leadscore
creates it. An existing topic is never altered (its retention is the operator's to change);
a start-up warning says where it differs from the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from leadscore.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Kafka's ``retention.ms`` for "keep until deleted".
KEEP = -1


@dataclass(frozen=True, slots=True)
class TopicRetention:
    """The retention one topic gets, and the setting that says so."""

    topic: str
    ms: int
    setting: str


def _ms(days: float) -> int:
    return round(days * DAY_MS) if days > 0 else KEEP


def retentions(settings: Settings) -> dict[str, TopicRetention]:
    """Topic -> the retention leadscore gives it; topics not here keep the broker's default
    (the input topics are the producers', the model and drift topics name no one)."""
    rows = [
        (settings.dead_letter_topic, settings.dead_letter_retention_days, "DEAD_LETTER"),
        (settings.webhook_dead_letter_topic, settings.dead_letter_retention_days, "DEAD_LETTER"),
        (settings.scores_topic, settings.topic_retention_days, "TOPIC"),
        (settings.features_topic, settings.topic_retention_days, "TOPIC"),
        (settings.training_topic, settings.training_retention_days, "TRAINING"),
        (settings.erasures_topic, settings.erasures_retention_days, "ERASURES"),
    ]
    return {
        topic: TopicRetention(topic, _ms(days), f"LEADSCORE_{name}_RETENTION_DAYS")
        for topic, days, name in rows
    }


def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The configs to create ``topic`` with (aiokafka's ``NewTopic(topic_configs=...)``)."""
    retention = retentions(settings).get(topic)
    return {} if retention is None else {"retention.ms": str(retention.ms)}


async def stored_retentions(
    admin: AIOKafkaAdminClient, topics: Iterable[str]
) -> dict[str, str | None]:
    """Each topic's ``retention.ms`` as the broker reports it (``None``: not reported, e.g.
    Tansu for a topic created without it). Every config is asked for and filtered here:
    Tansu 0.6 drops the connection when DescribeConfigs names the keys it wants."""
    names = list(topics)
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    found: dict[str, str | None] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            error, name, entries = resource[0], resource[3], resource[4]
            if error:
                continue
            found[name] = next((e[1] for e in entries if e[0] == "retention.ms"), None)
    return found


def differences(
    settings: Settings, stored: dict[str, str | None]
) -> list[tuple[TopicRetention, str | None]]:
    """(wanted, stored) for each topic whose stored retention is not the setting's."""
    wanted = retentions(settings)
    out: list[tuple[TopicRetention, str | None]] = []
    for topic, value in stored.items():
        retention = wanted.get(topic)
        if retention is None:
            continue
        try:
            same = value is not None and int(value) == retention.ms
        except ValueError:
            same = False
        if not same:
            out.append((retention, value))
    return out


async def warn_on_retention(admin: AIOKafkaAdminClient, settings: Settings, topics: Any) -> None:
    """Log a warning for each of ``topics`` (existing ones) whose retention is not its
    setting's. Nothing is changed; a broker that cannot say is logged and left."""
    try:
        stored = await stored_retentions(admin, [t for t in topics if t in retentions(settings)])
    except KafkaError as exc:
        log.warning("could not read the retention of leadscore's topics (%r); not checked", exc)
        return
    for retention, value in differences(settings, stored):
        log.warning(
            "topic %s keeps records for %s, but %s asks for %s; leadscore leaves existing "
            "topics as they are: change it on the broker (retention.ms=%d) or the setting",
            retention.topic,
            _say(value),
            retention.setting,
            _say(str(retention.ms)),
            retention.ms,
        )


def _say(ms: str | None) -> str:
    """``retention.ms`` in words: ``7 days``, ``ever``, ``the broker's default``."""
    if ms is None:
        return "the broker's default (retention.ms not set)"
    try:
        value = int(ms)
    except ValueError:
        return repr(ms)
    if value < 0:
        return "ever (retention.ms=-1)"
    return f"{value / DAY_MS:g} days (retention.ms={value})"
