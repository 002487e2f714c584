"""``models.events.v1``: announce a champion change, and keep a worker on the champion.

The registry's champion pointer is the source of truth. An event only tells every
worker to read the pointer now instead of at its next poll, so a stale, repeated or
out-of-order event can never put a worker on the wrong model: whatever the event
names, the worker loads the version the pointer names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from leadscore.infra.kafka.client import client_options, new_consumer, stop_consumer
from leadscore.infra.kafka.offsets import EndOffsetProbeError, end_offsets
from leadscore.infra.retry import Backoff, forever
from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring.scorer import Scorer
from leadscore.schemas.models import CHAMPION_CHANGE_TYPES, ModelEvent
from leadscore.settings import Settings

log = logging.getLogger(__name__)

#: Longest an announcement may take (connect + acknowledged send) before it counts as failed.
ANNOUNCE_TIMEOUT_S = 10.0
#: Longest pause between attempts to (re)start the listener; the registry poll covers the gap.
_LISTEN_MAX_BACKOFF_S = 30.0


class ModelEventPublishError(RuntimeError):
    """A model event could not be published (broker unreachable, timeout, refused)."""


# --- publishing --------------------------------------------------------------------------------


async def publish_model_event(
    settings: Settings, event: ModelEvent, *, timeout_s: float = ANNOUNCE_TIMEOUT_S
) -> None:
    """Publish ``event`` on ``settings.model_events_topic`` and wait for the broker's ack.

    Raises:
        ModelEventPublishError: not acknowledged within ``timeout_s``, or refused.
    """
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        request_timeout_ms=int(timeout_s * 1000),
    )
    where = f"{settings.model_events_topic} at {settings.kafka_bootstrap}"
    try:
        async with asyncio.timeout(timeout_s):
            await producer.start()
            await producer.send_and_wait(
                settings.model_events_topic,
                value=orjson.dumps(event.model_dump(mode="json")),
                key=event.key.encode(),
            )
    except TimeoutError as exc:
        raise ModelEventPublishError(f"no answer from {where} within {timeout_s:.0f} s") from exc
    except (KafkaError, OSError) as exc:
        raise ModelEventPublishError(f"could not publish to {where}: {exc!r}") from exc
    finally:
        await producer.stop()


# --- following the champion --------------------------------------------------------------------


class ModelFollower:
    """A worker's current scorer, kept on the registry's champion of one segment.

    :meth:`sync` is the only way the scorer changes: it reads the champion pointer,
    loads that version off the event loop and swaps it in with one assignment, so a
    micro-batch that took :attr:`scorer` at its start scores wholly with one model.
    A version that fails to load is refused (the old model stays) and is not tried
    again by polls; an event retries it.

    Args:
        registry: the model registry.
        load: version -> a ready scorer (slow: runs in a thread).
        scorer: the scorer to start with.
        segment: the registry segment to follow (``None``: the default segment).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        load: Callable[[str], Scorer],
        scorer: Scorer,
        *,
        segment: str | None = None,
    ) -> None:
        self.registry = registry
        self.load = load
        self.scorer = scorer
        self.segment = segment
        self.refused: set[str] = set()
        self._lock = asyncio.Lock()  # one sync at a time: an event and a poll never race

    async def sync(self, cause: str, *, retry_refused: bool = False) -> bool:
        """Switch to the champion if it is another version; return whether the scorer changed.

        Args:
            cause: why we look, for the log (``"registry poll"``, ``"model.promoted event me_…"``).
            retry_refused: try a version that failed to load before once more.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            current = self.scorer.champion  # what the scorer stands for (rules: cold start)
            try:
                version = await loop.run_in_executor(
                    None, lambda: self.registry.champion(segment=self.segment)
                )
            except (RegistryError, OSError) as exc:  # e.g. a hand-edited champion.json
                log.error(
                    "cannot read the champion from %s (%r); still scoring with %s (cause: %s)",
                    self.registry.root,
                    exc,
                    current,
                    cause,
                )
                return False
            if version is None or version == current:
                return False
            if version in self.refused and not retry_refused:
                return False
            try:
                scorer = await loop.run_in_executor(None, self.load, version)
            except Exception as exc:  # a broken artifact must not stop scoring with the old one
                self.refused.add(version)
                log.error(
                    "model %s could not be loaded (%r); still scoring with %s (cause: %s)",
                    version, exc, current, cause,
                )  # fmt: skip
                return False
            self.refused.discard(version)
            self.scorer = scorer
            if scorer.version == version:
                log.info("model %s replaces %s (cause: %s)", version, current, cause)
            else:  # the champion is not used as it is (e.g. the rules prior stands in for it)
                log.info(
                    "champion %s is scored with %s, replacing %s (cause: %s)",
                    version, scorer.version, current, cause,
                )  # fmt: skip
            return True

    async def on_record(self, record: ConsumerRecord) -> bool:
        """Handle one record of the model-events topic; return whether the scorer changed."""
        where = f"{record.topic}:{record.partition}@{record.offset}"
        try:
            event = ModelEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            # Not ours to dead-letter (the topic is not lead data); the pointer still decides.
            log.warning(
                "undecodable model event at %s (%s); checking the registry anyway",
                where,
                exc.errors()[0]["msg"] if exc.errors() else exc,
            )
            return await self.sync(f"undecodable record at {where}")
        if event.type not in CHAMPION_CHANGE_TYPES:
            log.debug("model event %s of type %s at %s: nothing to do", event.id, event.type, where)
            return False
        if event.segment != self.segment:
            log.debug("model event %s is about segment %s, not ours", event.id, event.key)
            return False
        changed = await self.sync(f"{event.type} event {event.id}", retry_refused=True)
        if self.scorer.champion != event.version:
            log.info(
                "model event %s names %s, but the champion is %s: the registry decides",
                event.id, event.version, self.scorer.champion,
            )  # fmt: skip
        return changed


async def follow_model_events(settings: Settings, follower: ModelFollower) -> None:
    """Run until cancelled: every record of the model-events topic makes ``follower`` sync.

    Each worker reads every partition itself (no consumer group), from the end of the
    topic as it is when the listener starts; right after positioning it syncs once, so
    a promotion between the worker's start and that moment is not missed. If the
    broker connection fails, it starts over with growing pauses (up to 30 s) and
    never stops the worker: the registry poll keeps working meanwhile.
    """
    await forever(
        lambda healthy: _listen(settings, follower, on_positioned=healthy),
        f"model-event listener on {settings.model_events_topic} (the registry poll still runs)",
        retry_on=(KafkaError, OSError, EndOffsetProbeError, _TopicMissingError),
        backoff=Backoff(1.0, _LISTEN_MAX_BACKOFF_S),
        log=log,
    )


class _TopicMissingError(RuntimeError):
    """The model-events topic does not exist (yet)."""


async def _listen(
    settings: Settings, follower: ModelFollower, *, on_positioned: Callable[[], None]
) -> None:
    topic = settings.model_events_topic
    consumer = new_consumer(settings, fetch_max_wait_ms=settings.fetch_max_wait_ms)
    try:
        await consumer.start()  # inside: a start that fails must close the consumer too
        await consumer.topics()  # refreshes metadata for every topic
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise _TopicMissingError(f"topic {topic} does not exist; `leadscore topics` creates it")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await end_offsets(consumer, tps)  # Tansu's ListOffsets alone answers short
        for tp in tps:
            consumer.seek(tp, ends[tp])
        positions = [await consumer.position(tp) for tp in tps]
        log.info("listening for model events on %s from offset(s) %s", topic, positions)
        on_positioned()
        await follower.sync("start of the model-event listener")
        async for record in consumer:
            await follower.on_record(record)
    finally:
        await stop_consumer(consumer)  # aiokafka's own cancellation must not end the restart loop
