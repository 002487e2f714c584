"""Scoring: lead events → the ``lead_state`` table → score events, Redis and the closed loop.

``score_leads`` takes micro-batches of the three input topics (activity, profile,
outcome; all keyed by lead id, so a lead's events meet on one partition, in order) and
hands each to :func:`~leadscore.models.batch.processing.process_batch` in the scoring
thread. Then it publishes what came back (score events, dead letters, re-routed records,
training examples, feature samples), writes the new states to the changelogged table
and the batch to Redis. Faust commits the batch's offsets only after the body returns,
and after the sends are delivered (:mod:`leadscore.streams.tansu_compat`): an outage
waits here and loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.types import TableT

from leadscore.infra.heartbeats import BEAT_S, beat
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.dead_letters import DeadLetterKeys, ref_of
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.redis_store import ScoreStore, public_state
from leadscore.infra.retry import until_done
from leadscore.models.batch.outcome_clock import OutcomeClock
from leadscore.models.batch.outputs import recent_activity
from leadscore.models.batch.processing import BatchResult, process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.monitoring.trends import aggregate as aggregate_trends
from leadscore.models.privacy.minimise import parse_keep
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.decode import EventKind
from leadscore.schemas.scores import LeadScored
from leadscore.settings import Settings
from leadscore.streams.context import WorkerContext, input_record, micro_batches
from leadscore.streams.erasure import Eraser
from leadscore.streams.outcomes import HeldOutcomes, quietly

log = logging.getLogger(__name__)


def attach_scoring(app: faust.App, worker: WorkerContext) -> None:
    """The input topics, the ``lead_state`` table, the ``score_leads`` agent and its timer."""
    s = worker.settings
    # The erasure requests are read with the lead's events, by the worker that holds the lead.
    input_topic = app.topic(
        *s.input_topics,
        s.erasures_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=s.topic_partitions,
    )
    # Lead id (utf-8 bytes) -> LeadState as orjson bytes. Changelogged: a restarted worker
    # recovers it. Bytes, not dicts, so no batch can alias or half-mutate a stored state.
    lead_to_state = app.Table(
        "lead_state",
        default=None,
        partitions=s.topic_partitions,
        key_type=bytes,  # bytes -> the "raw" codec for the changelog
        value_type=bytes,
    )
    # Pseudonym -> when the lead was erased (epoch s, as text): its older events are dropped.
    erased_leads = app.Table(
        "erased_leads",
        default=None,
        partitions=s.topic_partitions,
        key_type=bytes,
        value_type=bytes,
    )
    eraser = Eraser(s, worker.refs, lead_to_state, erased_leads)
    keyring = worker.keyring
    # Outcomes wait until the activity and profile topics are read up to their time, so a
    # training example never misses earlier events (leadscore.models.batch.outcome_clock).
    held = HeldOutcomes(app, s)
    process = _processor(s, lead_to_state, held.clock, eraser, keyring)

    @app.agent(input_topic)
    async def score_leads(stream: faust.StreamT[bytes]) -> None:
        """Process each micro-batch off the event loop, publish what it made, write Redis."""
        loop = asyncio.get_running_loop()
        store = worker.store()
        dead_letters = DeadLetterKeys(
            store.client,
            s.redis_prefix,
            s.dead_letter_retention_days * 86_400,
            keyring=worker.keyring,  # a copy of Redis alone opens no dead letter
            refs=worker.refs,
        )
        # Table writes queue in Faust's producer buffer; its default cap (100) makes every
        # batch stall and warn "producer buffer full". Let a few batches' worth queue.
        app.producer.buffer.max_messages = max(1000, 4 * s.batch_size)
        async for batch in micro_batches(stream, s):
            started = time.perf_counter()
            erasures = [e for e in batch if e.message.topic == s.erasures_topic]
            events = (
                [e for e in batch if e.message.topic != s.erasures_topic] if erasures else batch
            )
            if erasures:
                erased = await eraser.erase(app, erasures, store, worker.ids())
                worker.forget_mapped(erased)
            records = [input_record(event) for event in events]
            worker.note_read(records)
            now = datetime.now(UTC)
            scorer = worker.models.scorer  # one model for the whole batch, even if a swap lands
            result = await loop.run_in_executor(worker.executor, process, records, scorer, now)
            bodies = ScoreBodies.of(result.scores, worker.refs)
            held_now = held.hold(records, result)
            # Redis must know each pseudonym before anything about the lead is on a topic.
            await until_done(
                partial(worker.remember_leads, result), "write lead pseudonyms to Redis", log=log
            )
            await _publish(
                app, s, worker.refs, keyring, dead_letters, events, result, bodies, lead_to_state
            )
            write = partial(
                _write, store, held, s, scorer, result, bodies.redis, len(records), held_now
            )
            await until_done(write, "write scores to Redis", log=log)
            await held.after_batch(store, held_now)
            worker.last_batch_at = time.time()
            log.debug(
                "batch of %d: %d scores, %d dead letters in %.1f ms", len(records),
                len(result.scores), len(result.dead_letters), (time.perf_counter() - started) * 1000,
            )  # fmt: skip

    @app.task
    async def heartbeat() -> None:
        """Tell the API this worker is alive (from its start), and when it last processed a batch."""
        while True:
            try:
                await beat(worker.store().client, s.redis_prefix, worker.last_batch_at)
            except Exception:  # Redis away: the batch writes say so; the API sees no beat
                log.debug("heartbeat not written", exc_info=True)
            await asyncio.sleep(BEAT_S)

    @app.timer(interval=1.0)
    async def release_outcomes() -> None:
        """Republish held outcomes whose feature topics caught up (also when no batch comes)."""
        await quietly(held.release(worker.store()), "release held outcomes")


def _processor(
    settings: Settings,
    lead_to_state: TableT[bytes, bytes],
    gate: OutcomeClock,
    eraser: Eraser,
    keyring: Keyring,
) -> Callable[[Sequence[InputRecord], Scorer, datetime], BatchResult]:
    """``process(records, scorer, now)``: :func:`process_batch` as this worker runs it."""
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
        url_keep_params=parse_keep(settings.url_keep_params),
    )

    refs = eraser.refs

    def load_state(lead_id: str) -> dict[str, Any] | None:
        pseudonym = refs.table(lead_id).encode()
        raw = lead_to_state.get(pseudonym)
        if raw is None:
            return None
        state: dict[str, Any] = orjson.loads(keyring.open(raw, pseudonym))
        state["lead_id"] = lead_id  # stored without it (the key is the pseudonym)
        if state.get("last_score_event") is not None:
            state["last_score_event"]["lead_id"] = lead_id
        return state

    def process(records: Sequence[InputRecord], scorer: Scorer, now: datetime) -> BatchResult:
        return process_batch(
            records,
            kind_of_topic=kind_of_topic,
            load_state=load_state,
            scorer=scorer,
            limits=limits,
            now=now,
            partitions_of_topic=partitions_of_topic,
            sample_rate=settings.feature_sample_rate,
            outcome_gate=gate,
            erased_at=eraser.erased_at,
        )

    return process


async def _publish(
    app: faust.App,
    settings: Settings,
    refs: LeadRefs,
    keyring: Keyring,
    dead_letter_keys: DeadLetterKeys,
    events: Sequence[faust.EventT[bytes]],
    result: BatchResult,
    score_bodies: ScoreBodies,
    lead_to_state: TableT[bytes, bytes],
) -> None:
    """Publish a batch's outputs. Sends are queued; Faust flushes them before it commits offsets.

    What goes on leadscore's own topics names the lead by ``refs.topic`` (its pseudonym,
    unless the deployment writes plain ids); the table is keyed by the pseudonym, and its
    values leave the lead id out. Re-routed records are the producers' own, moved as they are.
    """
    producer = app.producer

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        await producer.send(topic, key, value, None, None, None)

    letters = [letter for _, letter in result.dead_letters]
    sealed = await until_done(
        partial(dead_letter_keys.seal_batch, letters), "seal dead letters (Redis)", log=log
    )
    for letter in sealed:
        ref = ref_of(letter)  # the pseudonym of the record's key
        body = orjson.dumps(letter.model_dump(mode="json"))
        await send(settings.dead_letter_topic, ref.encode() if ref else None, body)
    for index, lead_id, partition in result.reroutes:
        message = events[index].message
        await producer.send(
            message.topic, lead_id.encode(), message.value, partition, None, message.headers
        )
    for lead_id, (state, index) in result.states.items():
        # The table writes its changelog to the partition of the *current* event; in a
        # batch that must be the lead's own event, not whichever came last.
        _current_event.set(weakref.ref(events[index]))
        stored = state.to_dict()
        del stored["lead_id"]
        if stored["last_score_event"] is not None:
            stored["last_score_event"] = {
                k: v for k, v in stored["last_score_event"].items() if k != "lead_id"
            }
        pseudonym = refs.table(lead_id).encode()
        lead_to_state[pseudonym] = keyring.seal(orjson.dumps(stored), pseudonym)
    for key, body in score_bodies.topic:
        await send(settings.scores_topic, key, body)
    # The closed loop's inputs (docs/drift.md): labelled examples and scored vectors.
    for example in result.examples:
        await send(settings.training_topic, *_named(example.model_dump(mode="json"), refs))
    for sample in result.samples:
        await send(settings.features_topic, *_named(sample.model_dump(mode="json"), refs))


def _named(record: dict[str, Any], refs: LeadRefs) -> tuple[bytes, bytes]:
    """(Kafka key, JSON) of a record for one of leadscore's topics: its ``lead_id`` as the
    topic names the lead (changed in place)."""
    ref = refs.topic(record["lead_id"])
    record["lead_id"] = ref
    return ref.encode(), orjson.dumps(record)


@dataclass(slots=True)
class ScoreBodies:
    """A batch's score events encoded once each way: as Redis and the API keep them (with
    the lead id), and as (key, JSON) for the scores topic (the lead as the topic names it)."""

    redis: list[bytes]
    topic: list[tuple[bytes, bytes]]

    @classmethod
    def of(cls, scores: Sequence[LeadScored], refs: LeadRefs) -> ScoreBodies:
        redis: list[bytes] = []
        topic: list[tuple[bytes, bytes]] = []
        for score in scores:
            record = score.model_dump(mode="json")
            body = orjson.dumps(record)
            redis.append(body)
            ref = refs.topic(score.lead_id)
            topic.append((ref.encode(), body if ref == score.lead_id else _named(record, refs)[1]))
        return cls(redis, topic)


async def _write(
    store: ScoreStore,
    held: HeldOutcomes,
    settings: Settings,
    scorer: Scorer,
    result: BatchResult,
    bodies: list[bytes],
    n_records: int,
    held_now: dict[str, bytes],
) -> None:
    """Write a batch to Redis: scores, states, counters, activity, trends, held outcomes."""
    counters = {
        # A held outcome is not taken now; it counts when it is read again and taken.
        "events": n_records - len(held_now),
        "applied": result.applied,
        "duplicates": result.duplicates,
        "scores": len(result.scores),
        "dead_letters": len(result.dead_letters),
        "rerouted": len(result.reroutes),
        "training_examples": len(result.examples),
        "training_examples_skipped": result.examples_skipped,
        "outcomes_held": len(held_now),
        "erased_skipped": result.erased_skipped,
    }
    states = {
        lead_id: public_state(state.to_dict()) for lead_id, (state, _) in result.states.items()
    }
    trends = aggregate_trends(
        result.scores,
        result.examples,
        grade_of=lambda p: scorer.policy.grade(to_score(p)),
        bucket_s=settings.trends_bucket_s,
        skip_ids=result.republished,
    )
    activity = recent_activity(result.activity, settings.activity_length)
    await store.write_batch(result.scores, bodies, counters, states, activity, trends)
    await held.save(store, held_now)  # before the batch's offsets commit: a crash loses none
