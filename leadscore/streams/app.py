"""The Faust worker: input topics → per-lead state table → scores on ``leads.scores.v1`` and Redis.

Faust stays in this package. The agent is thin: it hands each micro-batch to
:mod:`leadscore.models.batch.processing` and writes out what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from leadscore.infra.model_events import ModelFollower, follow_model_events
from leadscore.infra.redis_store import ScoreStore, connect, public_state
from leadscore.infra.scorer import load_scorer
from leadscore.infra.webhooks.queue import ScoreRecord
from leadscore.infra.webhooks.worker import WebhookWorker
from leadscore.models.batch.outcome_clock import OutcomeClock, released
from leadscore.models.batch.processing import (
    InputRecord,
    Limits,
    apply_records,
    dead_letter,
    recent_activity,
    score_batch,
)
from leadscore.models.monitoring.trends import aggregate as aggregate_trends
from leadscore.models.registry.store import ModelRegistry
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.decode import EventKind
from leadscore.settings import Settings
from leadscore.streams.drift_agent import DriftAgent
from leadscore.streams.retrain import RetrainController
from leadscore.streams.tansu_compat import install_tansu_compat

log = logging.getLogger(__name__)


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for SASL and/or SSL, or ``None`` for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = ssl.create_default_context() if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


def create_app(settings: Settings, scorer: Scorer | None = None) -> faust.App:
    """Build the Faust app with its topics, table and agents.

    Args:
        settings: configuration.
        scorer: the scorer to start with; loaded from the registry when not given.
    """
    install_tansu_compat()
    _install_fetch_max_wait()
    # The scorer the agent uses; swapped between micro-batches on a models.events.v1
    # message, or by the registry poll (leadscore.infra.model_events).
    models = ModelFollower(
        ModelRegistry(settings.model_dir),
        lambda version: load_scorer(settings, version),
        scorer or load_scorer(settings),
    )
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_linger=0.005,
        web_enabled=False,
    )
    input_topic = app.topic(
        *settings.input_topics,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )
    # Lead id (utf-8 bytes) -> LeadState as orjson bytes. Changelogged: a restarted worker
    # recovers it. Bytes, not dicts, so no batch can alias or half-mutate a stored state.
    lead_to_state = app.Table(
        "lead_state",
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,  # bytes -> the "raw" codec for the changelog
        value_type=bytes,
    )

    def load_state(lead_id: str) -> dict[str, Any] | None:
        raw = lead_to_state.get(lead_id.encode())
        return orjson.loads(raw) if raw is not None else None

    kind_of_topic = {
        settings.activity_topic: EventKind.ACTIVITY,
        settings.profile_topic: EventKind.PROFILE,
        settings.outcome_topic: EventKind.OUTCOME,
    }
    # ensure_topics() checked the input topics have exactly this many partitions.
    partitions_of_topic = {topic: settings.topic_partitions for topic in settings.input_topics}
    limits = Limits(
        max_event_bytes=settings.max_event_bytes,
        max_future_skew_s=settings.max_future_skew_s,
        dedupe_window=settings.dedupe_window,
    )

    # Outcomes wait until the activity and profile topics have been read up to their time
    # (leadscore.models.batch.outcome_clock), so a training example never misses earlier events.
    def topic_progress(topic: str, partition: int) -> tuple[int | None, int | None]:
        tp = TP(topic, partition)
        committed = app.consumer._committed_offset.get(tp)
        return committed, app.consumer.highwater(tp)

    outcome_clock = OutcomeClock(
        feature_topics=(settings.activity_topic, settings.profile_topic),
        progress=topic_progress,
        max_delay_s=settings.label_max_delay_s,
    )
    held_key = f"{settings.redis_prefix}outcomes:held"
    last_release = [0.0]

    def outcome_clock_due(store: ScoreStore) -> bool:
        """After a batch, look at the held outcomes at most twice a second."""
        now = time.monotonic()
        if now - last_release[0] < 0.5:
            return False
        last_release[0] = now
        return True

    async def release_held_outcomes(store: ScoreStore) -> None:
        """Republish the held outcomes of this worker's partitions that are due (see outcome_clock)."""
        held = await store.client.hgetall(held_key)
        if not held:
            return
        try:
            assigned = app.consumer.assignment()
        except Exception:  # the consumer is not started yet
            return
        mine = {tp.partition for tp in assigned if tp.topic == settings.outcome_topic}
        for field, raw in held.items():
            entry = orjson.loads(raw)
            if entry["partition"] not in mine or not outcome_clock.due(entry):
                continue
            topic, partition, key, value, headers = released(entry)
            await app.producer.send_and_wait(topic, key, value, partition, None, headers)
            await store.client.hdel(held_key, field)

    # One thread: batches are scored in order, off the event loop.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
    store_holder: dict[str, ScoreStore] = {}

    def get_store() -> ScoreStore:
        if "store" not in store_holder:
            store_holder["store"] = ScoreStore(
                connect(settings.redis_url, max_connections=settings.redis_max_connections),
                settings.redis_prefix,
                settings.history_length,
                activity_length=settings.activity_length,
                trends_retention_s=int(settings.trends_retention_days * 86_400),
            )
        return store_holder["store"]

    @app.agent(input_topic)
    async def score_leads(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        store = get_store()
        # Table writes queue in Faust's producer buffer; its default cap (100) makes every
        # batch stall and warn "producer buffer full". Let a few batches' worth queue.
        app.producer.buffer.max_messages = max(1000, 4 * settings.batch_size)
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            started = time.perf_counter()
            now = datetime.now(UTC)
            records = [_record(event) for event in events]
            batch = apply_records(
                records,
                kind_of_topic=kind_of_topic,
                load_state=load_state,
                limits=limits,
                now=now,
                partitions_of_topic=partitions_of_topic,
                sample_rate=settings.feature_sample_rate,
                outcome_gate=outcome_clock,
            )
            held = dict(
                outcome_clock.hold(records[index], t) for index, t in batch.result.deferrals
            )
            scorer = models.scorer  # one model for the whole batch, even if a swap lands now
            await loop.run_in_executor(executor, score_batch, batch, scorer, now)
            result = batch.result
            for index, reason in result.scoring_failures:
                result.dead_letters.append(
                    (index, dead_letter(records[index], "scoring_error", reason, now))
                )
            bodies = [orjson.dumps(score.model_dump(mode="json")) for score in result.scores]
            await _write_out(app, settings, events, result, bodies, lead_to_state)
            counters = {
                # A held outcome is not taken now; it counts when it is read again and taken.
                "events": len(records) - len(held),
                "applied": result.applied,
                "duplicates": result.duplicates,
                "scores": len(result.scores),
                "dead_letters": len(result.dead_letters),
                "rerouted": len(result.reroutes),
                "training_examples": len(result.examples),
                "training_examples_skipped": result.examples_skipped,
                "outcomes_held": len(held),
            }
            # The batch's offsets are committed only after this loop body returns, so an
            # outage waits here (and the consumer with it) instead of losing the batch.
            states = {
                lead_id: public_state(state.to_dict())
                for lead_id, (state, _) in result.states.items()
            }
            activity = recent_activity(result, settings.activity_length)
            trends = aggregate_trends(
                result.scores,
                result.examples,
                grade_of=lambda p: scorer.policy.grade(to_score(p)),
                bucket_s=settings.trends_bucket_s,
                skip_ids=result.republished,
            )

            async def write() -> None:
                await store.write_batch(result.scores, bodies, counters, states, activity, trends)
                if held:  # kept before the batch's offsets are committed: a crash loses none
                    await store.client.hset(held_key, mapping=held)

            await _until_done(write, "write scores to Redis")
            if held or outcome_clock_due(store):
                await _quietly(release_held_outcomes(store), "release held outcomes")
            log.debug(
                "batch of %d: %d scores, %d dead letters in %.1f ms",
                len(records),
                len(result.scores),
                len(result.dead_letters),
                (time.perf_counter() - started) * 1000,
            )

    @app.task
    async def follow_model_events_topic() -> None:
        """Swap models as soon as models.events.v1 announces a change (each worker reads all)."""
        await follow_model_events(settings, models)

    @app.timer(interval=1.0)
    async def release_outcomes() -> None:
        """Republish held outcomes whose feature topics caught up (also when no batch comes)."""
        await _quietly(release_held_outcomes(get_store()), "release held outcomes")

    @app.timer(interval=settings.model_poll_s)
    async def poll_champion() -> None:
        """The safety net: catch a champion change whose event never arrived."""
        await models.sync("registry poll")

    # --- webhooks: leads.scores.v1 -> per-subscription queues in Redis -> receivers -----------
    # The logic is in leadscore.infra.webhooks.worker (docs/webhooks.md); these agents only feed it.
    webhooks = WebhookWorker(
        settings,
        lambda topic, key, value: app.producer.send_and_wait(topic, key, value, None, None, None),
    )
    scores_topic = app.topic(
        settings.scores_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )

    @app.agent(scores_topic)
    async def queue_webhooks(stream: faust.StreamT) -> None:
        """Queue each score event for the subscriptions it passes; offsets commit once queued."""
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            await webhooks.queue([_score_record(event) for event in events])

    @app.task
    async def deliver_webhooks() -> None:
        """Send queued deliveries, signed, retried; dead-letter what runs out of attempts."""
        await webhooks.deliver_forever()

    # --- the closed loop: drift windows in their own consumer group, retraining -------------
    # (leadscore.streams.drift_agent, leadscore.streams.retrain; docs/drift.md)
    if settings.drift_enabled:

        @app.task
        async def watch_drift() -> None:
            """Test windows of scored vectors and labelled outcomes; retrain when they say so."""
            redis = connect(settings.redis_url, max_connections=8)
            controller = RetrainController(settings, redis)
            agent = DriftAgent(
                settings, redis, on_alert=controller.on_drift, on_labels=controller.on_labels
            )
            app.leadscore_drift = agent  # type: ignore[attr-defined]
            app.leadscore_retrain = controller  # type: ignore[attr-defined]
            ticker = asyncio.create_task(_tick(controller))
            try:
                await agent.run()
            finally:
                ticker.cancel()

    app.leadscore_models = models  # type: ignore[attr-defined]
    app.leadscore_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    return app


async def _tick(controller: RetrainController) -> None:
    while True:
        try:
            await controller.on_tick()
        except Exception as exc:  # Redis down: the schedule waits
            log.warning("retrain schedule check failed (%r)", exc)
        await asyncio.sleep(30.0)


async def _quietly(work: Awaitable[None], what: str) -> None:
    """Run ``work``; on an outage, log and go on (it is tried again on the next tick)."""
    try:
        await work
    except Exception as exc:
        log.warning("could not %s (%r); trying again shortly", what, exc)


async def _until_done(attempt: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``attempt`` until it succeeds, backing off up to 10 s between tries."""
    delay = 0.2
    while True:
        try:
            await attempt()
            return
        except Exception as exc:  # an outage: wait it out, never drop the batch
            log.warning("could not %s (%r); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def _install_fetch_max_wait() -> None:
    """Let the worker's consumer wait ``app.leadscore_fetch_max_wait_ms`` per fetch.

    Faust hard-codes 1500 ms. Tansu holds an empty fetch for about half of the wait and
    does not answer early when records arrive, so it is a floor under latency there
    (measured with a plain consumer at 500 events/s, p50: 375 ms at 1500, 138 ms at 500,
    33 ms at 100; docs/performance.md). Apache Kafka answers as soon as records arrive.
    """
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_leadscore_patched", False):
        return

    def create_worker_consumer(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = create(self, transport)
        wait_ms = getattr(self.app, "leadscore_fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts
        return consumer

    create_worker_consumer._leadscore_patched = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def _score_record(event: faust.EventT) -> ScoreRecord:
    message = event.message
    return ScoreRecord(message.topic, message.partition, message.offset, message.key, message.value)


def _record(event: faust.EventT) -> InputRecord:
    message = event.message
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in (message.headers or ())),
    )


async def _write_out(
    app: faust.App,
    settings: Settings,
    events: list[faust.EventT],
    result: Any,
    score_bodies: list[bytes],
    lead_to_state: faust.Table,
) -> None:
    """Publish a batch's outputs. Sends are queued; Faust flushes them before it commits offsets."""
    producer = app.producer
    for index, letter in result.dead_letters:
        await producer.send(
            settings.dead_letter_topic,
            events[index].message.key,
            orjson.dumps(letter.model_dump(mode="json")),
            None,
            None,
            None,
        )
    for index, lead_id, partition in result.reroutes:
        message = events[index].message
        await producer.send(
            message.topic, lead_id.encode(), message.value, partition, None, message.headers
        )
    for lead_id, (state, index) in result.states.items():
        # The table writes its changelog to the partition of the *current* event; in a
        # batch that must be the lead's own event, not whichever came last.
        _current_event.set(weakref.ref(events[index]))
        lead_to_state[lead_id.encode()] = orjson.dumps(state.to_dict())
    for score, body in zip(result.scores, score_bodies, strict=True):
        await producer.send(
            settings.scores_topic,
            score.lead_id.encode(),
            body,
            None,
            None,
            None,
        )
    # The closed loop's inputs (docs/drift.md): labelled examples and scored vectors.
    for example in result.examples:
        await producer.send(
            settings.training_topic,
            example.lead_id.encode(),
            orjson.dumps(example.model_dump(mode="json")),
            None,
            None,
            None,
        )
    for sample in result.samples:
        await producer.send(
            settings.features_topic,
            sample.lead_id.encode(),
            orjson.dumps(sample.model_dump(mode="json")),
            None,
            None,
            None,
        )
