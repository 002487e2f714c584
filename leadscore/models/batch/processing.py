"""One micro-batch of input records → new lead states, score events and dead letters.

This is the worker's logic with no stream engine in it: the Faust agent in
:mod:`leadscore.streams.app` only feeds it records and writes out what it
returns, so it can be tested, profiled and reused without a broker.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any, Protocol

import numpy as np
import orjson
from aiokafka.partitioner import murmur2

from leadscore.models.features.state import (
    FEATURE_SPEC_VERSION,
    LeadState,
    apply_event,
    to_matrix,
    to_vector,
)
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.decode import EventKind, decode_event
from leadscore.schemas.errors import InvalidEventError
from leadscore.schemas.events import OUTCOME_TYPES
from leadscore.schemas.learning import FeatureSample, TrainingExample
from leadscore.schemas.scores import DeadLetter, LeadScored

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A record as consumed: where it came from, its raw bytes and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class OutcomeGate(Protocol):
    """Whether an outcome may be turned into a training example now (see :class:`OutcomeClock`)."""

    def observe(self, record: InputRecord, event_time: float) -> None: ...

    def ready(self, record: InputRecord, outcome_time: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits applied while decoding."""

    max_event_bytes: int = 65_536
    max_future_skew_s: float = 300.0
    dedupe_window: int = 256


@dataclass(slots=True)
class BatchResult:
    """What one batch produced, for the caller to write out.

    Attributes:
        states: lead id -> (new state, index of the lead's last record in the batch;
            the state must be stored in that record's partition).
        scores: score events to publish (keyed by lead id).
        dead_letters: (record index, dead letter) for records that could not be used.
        reroutes: (record index, lead id, partition) for valid records that are not where
            the lead's events belong: their Kafka key is not the lead id, or (when partition
            counts are given) they sit on another partition than the default (murmur2)
            partitioner puts the lead on. They are republished to the same topic, keyed by
            the lead id, on that partition, so all events of a lead meet on one partition
            whatever client produced them.
        applied: events that changed state; duplicates: repeated event ids dropped.
        scoring_failures: (record index, reason) of the event behind each lead that could
            not be scored (its state is kept; the caller dead-letters the record).
        deferrals: (record index, outcome time) of first-outcome records held back by the outcome gate: the
            lead's activity or profile topic is behind the outcome's time, so the example
            would miss events from before the label. The caller republishes them to their
            own partition, to be read again later (see :class:`OutcomeClock`).
        examples: labelled examples for ``leads.training.v1``, one per lead's first outcome,
            with the vector as it stood when the outcome was applied (see
            :class:`~leadscore.schemas.learning.TrainingExample`).
        examples_skipped: first outcomes with no example because events after the outcome
            (in event time) had already reached the state: the vector would leak them.
        samples: the scored vectors for ``leads.features.v1`` (the drift agent's input).
        activity: (lead id, event) of every event applied to a state, in consumption
            order: the lead's recent activity in Redis (see :func:`activity_entry`).
            Repeats, dead letters, re-routed and held records are not in it.
        republished: ids of the score events in ``scores`` that are re-publications of a
            lead's last score (a repeat of its cause arrived), not new scores.
    """

    states: dict[str, tuple[LeadState, int]] = field(default_factory=dict)
    scores: list[LeadScored] = field(default_factory=list)
    dead_letters: list[tuple[int, DeadLetter]] = field(default_factory=list)
    reroutes: list[tuple[int, str, int | None]] = field(default_factory=list)
    deferrals: list[tuple[int, float]] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    scoring_failures: list[tuple[int, str]] = field(default_factory=list)
    examples: list[TrainingExample] = field(default_factory=list)
    examples_skipped: int = 0
    samples: list[FeatureSample] = field(default_factory=list)
    activity: list[tuple[str, Any]] = field(default_factory=list)
    republished: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Labelled:
    """A first outcome and the lead's vector at that moment (scored later, with the batch)."""

    lead_id: str
    event: Any
    vector: np.ndarray
    feature_time: float | None


@dataclass(slots=True)
class _LeadWork:
    state: LeadState
    last_index: int
    rescore: bool = False
    cause_id: str = ""
    cause_type: str | None = None
    cause_time: datetime | None = None


def process_batch(
    records: Sequence[InputRecord],
    *,
    kind_of_topic: dict[str, EventKind],
    load_state: Callable[[str], dict[str, Any] | None],
    scorer: Scorer,
    limits: Limits,
    now: datetime | None = None,
    partitions_of_topic: Mapping[str, int] | None = None,
    sample_rate: float = 1.0,
) -> BatchResult:
    """Apply a micro-batch of records to lead states and score the leads that changed.

    Args:
        records: the batch, in consumption order (per partition: offset order).
        kind_of_topic: which kind of event each input topic carries.
        load_state: the stored state of a lead (as a dict), or ``None`` for a new lead.
        scorer: the current model and scoring policy.
        limits: decoding limits and the dedupe window.
        now: wall-clock time (for refusing future event times and stamping ``scored_at``).
        partitions_of_topic: partition count of each input topic; when given, records on
            the wrong partition for their lead are re-routed (see :class:`BatchResult`).

    Returns:
        A :class:`BatchResult`. Nothing is written by this function.
    """
    now = now or datetime.now(UTC)
    batch = apply_records(
        records,
        kind_of_topic=kind_of_topic,
        load_state=load_state,
        limits=limits,
        now=now,
        partitions_of_topic=partitions_of_topic,
        sample_rate=sample_rate,
    )
    score_batch(batch, scorer, now)
    return batch.result


@dataclass(slots=True)
class AppliedBatch:
    """Records applied to states, not yet scored (the cheap half of a batch)."""

    result: BatchResult
    work: dict[str, _LeadWork]
    labelled: list[_Labelled] = field(default_factory=list)
    sample_rate: float = 1.0


def apply_records(
    records: Sequence[InputRecord],
    *,
    kind_of_topic: dict[str, EventKind],
    load_state: Callable[[str], dict[str, Any] | None],
    limits: Limits,
    now: datetime,
    partitions_of_topic: Mapping[str, int] | None = None,
    sample_rate: float = 1.0,
    outcome_gate: OutcomeGate | None = None,
) -> AppliedBatch:
    """Decode the records and apply them to lead states (see :func:`process_batch`).

    ``sample_rate`` is the share of rescored vectors published on the features topic
    (chosen by a hash of the causing event id, so a replay samples the same ones).
    ``outcome_gate`` (the worker's): a lead's first outcome that it says is not ready is
    not applied but deferred (:attr:`BatchResult.deferrals`); ``None`` applies every outcome.
    """
    result = BatchResult()
    work: dict[str, _LeadWork] = {}
    labelled: list[_Labelled] = []
    decoded: list[Any] = []
    for index, record in enumerate(records):
        try:
            event = decode_event(
                record.value,
                now=now,
                max_bytes=limits.max_event_bytes,
                max_future_skew_s=limits.max_future_skew_s,
                expected_kind=kind_of_topic.get(record.topic),
            )
        except InvalidEventError as exc:
            result.dead_letters.append((index, dead_letter(record, exc.code, exc.message, now)))
            decoded.append(None)
            continue
        decoded.append(event)
        if outcome_gate is not None and event.type not in OUTCOME_TYPES:
            # The whole batch's progress first: an outcome early in the batch is judged
            # with the activity the same batch brings.
            outcome_gate.observe(record, event.time.timestamp())
    for index, (record, event) in enumerate(zip(records, decoded)):
        if event is None:
            continue
        lead_id: str = event.subject
        key = lead_id.encode()
        n_partitions = partitions_of_topic.get(record.topic) if partitions_of_topic else None
        home = home_partition(key, n_partitions) if n_partitions else None
        if record.key != key or (home is not None and record.partition != home):
            result.reroutes.append((index, lead_id, home))
            continue
        try:
            lead = work.get(lead_id)
            if lead is None:
                stored = load_state(lead_id)
                state = LeadState.from_dict(stored) if stored is not None else LeadState(lead_id)
                lead = _LeadWork(state=state, last_index=index)
            first_outcome = event.type in OUTCOME_TYPES and lead.state.outcome_t is None
            if (
                first_outcome
                and outcome_gate is not None
                and event.id not in lead.state.seen_ids
                and not outcome_gate.ready(record, event.time.timestamp())
            ):
                result.deferrals.append((index, event.time.timestamp()))
                continue
            work.setdefault(lead_id, lead)
            applied = apply_event(lead.state, event, dedupe_window=limits.dedupe_window)
            if applied and first_outcome:
                labelled.append(_labelled(lead.state, event))
        except Exception as exc:  # a bug or a corrupt stored state: lose nothing, stop nothing
            log.exception(
                "record %s[%d]@%d could not be applied",
                record.topic,
                record.partition,
                record.offset,
            )
            result.dead_letters.append(
                (
                    index,
                    dead_letter(
                        record, "processing_error", f"could not apply the event: {exc!r}", now
                    ),
                )
            )
            continue
        if not applied:
            result.duplicates += 1
            # A repeat of the event behind the last published score: that publish may have
            # been lost in a crash before the offset commit, so publish it again, unchanged
            # (same id and content; consumers dedupe by id).
            last = lead.state.last_score_event
            if last is not None and event.id == lead.state.score_cause_id:
                again = LeadScored.model_validate(last)
                result.scores.append(again)
                result.republished.add(again.id)
            continue
        result.applied += 1
        result.activity.append((lead_id, event))
        lead.last_index = index
        if event.type not in OUTCOME_TYPES:  # outcomes are labels, never features
            lead.rescore = True
            lead.cause_id, lead.cause_type, lead.cause_time = event.id, event.type, event.time
    for lead_id, lead in work.items():
        result.states[lead_id] = (lead.state, lead.last_index)
    return AppliedBatch(result=result, work=work, labelled=labelled, sample_rate=sample_rate)


def _labelled(state: LeadState, event: Any) -> _Labelled:
    """Snapshot the vector now: later events of the same batch must not reach the example."""
    return _Labelled(state.lead_id, event, to_vector(state), state.last_event_t)


def score_batch(batch: AppliedBatch, scorer: Scorer, now: datetime) -> None:
    """Score the leads that changed, with one model call, and explain those worth publishing.

    This is the CPU-heavy half: the worker runs it in an executor, off the event loop.
    """
    work, result = batch.work, batch.result
    if batch.labelled:
        _label(batch.labelled, result, scorer, now)
    leads = [lead for lead in work.values() if lead.rescore]
    if not leads:
        return
    try:
        _score(leads, result, scorer, now, batch.sample_rate)
    except Exception:
        # One lead's vector broke the batch call: score lead by lead so the others go on,
        # and dead-letter the event behind each lead that still fails.
        log.exception("batch scoring failed; scoring %d leads one by one", len(leads))
        for lead in leads:
            try:
                _score([lead], result, scorer, now, batch.sample_rate)
            except Exception as exc:
                log.exception("lead %s could not be scored", lead.state.lead_id)
                result.scoring_failures.append(
                    (lead.last_index, f"could not score the lead: {exc!r}")
                )


def _label(labelled: list[_Labelled], result: BatchResult, scorer: Scorer, now: datetime) -> None:
    """Turn first outcomes into training examples, with the champion's probability for each."""
    clean = []
    for item in labelled:
        outcome_t = item.event.time.timestamp()
        if item.feature_time is not None and item.feature_time > outcome_t:
            result.examples_skipped += 1
            log.info(
                "no training example for lead %s: its state already holds events after its "
                "outcome (features at %.0f, outcome at %.0f)", item.lead_id, item.feature_time, outcome_t,
            )  # fmt: skip
            continue
        clean.append(item)
    if not clean:
        return
    try:
        probabilities = scorer.probabilities(np.stack([item.vector for item in clean]))
    except Exception:  # the labels must not cost the batch its scores
        log.exception(
            "could not score %d labelled vectors; their examples are not emitted", len(clean)
        )
        return
    for item, p in zip(clean, probabilities):
        event = item.event
        outcome = event.type.removeprefix("lead.")
        result.examples.append(
            TrainingExample(
                id=example_id(item.lead_id, event.id),
                lead_id=item.lead_id,
                label=1 if outcome == "converted" else 0,
                outcome=outcome,
                outcome_event_id=event.id,
                outcome_time=event.time,
                feature_time=(
                    datetime.fromtimestamp(item.feature_time, UTC)
                    if item.feature_time is not None
                    else None
                ),
                feature_spec_version=FEATURE_SPEC_VERSION,
                features=[float(v) for v in item.vector],
                model_version=scorer.version,
                probability=min(1.0, max(0.0, float(p))),
                produced_at=now,
            )
        )


#: Longest ``data`` value (as text) kept in an activity entry; longer ones are left out.
ACTIVITY_MAX_VALUE_CHARS = 200


def activity_entry(event: Any) -> bytes:
    """An applied input event as the compact JSON kept in ``P activity:<lead_id>``.

    ``{"id", "type", "time" (ISO UTC), "data"}``: ``data`` holds the event's fields that
    are set, without any value longer than :data:`ACTIVITY_MAX_VALUE_CHARS` characters
    (as a string, or as JSON for lists and objects), so one long URL cannot bloat the list.
    """
    data = event.data.model_dump(mode="json", exclude_none=True) if event.data is not None else {}
    small = {
        name: value
        for name, value in data.items()
        if len(value if isinstance(value, str) else orjson.dumps(value)) <= ACTIVITY_MAX_VALUE_CHARS
    }
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": small,
        }
    )


def recent_activity(result: BatchResult, keep: int) -> dict[str, list[bytes]]:
    """Lead id -> :func:`activity_entry` of its applied events, oldest first by event time.

    At most the ``keep`` newest per lead are encoded (the list is capped at that anyway);
    ``keep=0`` gives nothing.
    """
    if not keep:
        return {}
    by_lead: dict[str, list[Any]] = {}
    for lead_id, event in result.activity:
        by_lead.setdefault(lead_id, []).append(event)
    return {
        lead_id: [activity_entry(event) for event in sorted(events, key=lambda e: e.time)[-keep:]]
        for lead_id, events in by_lead.items()
    }


def example_id(lead_id: str, outcome_event_id: str) -> str:
    """The training example's id: one lead's first outcome always gives the same id."""
    digest = blake2b(f"{lead_id}\x00{outcome_event_id}".encode(), digest_size=12)
    return "ex_" + digest.hexdigest()


def sampled(cause_event_id: str, rate: float) -> bool:
    """Whether the vector rescored for ``cause_event_id`` goes to the features topic."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = blake2b(cause_event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def _score(
    leads: list[_LeadWork],
    result: BatchResult,
    scorer: Scorer,
    now: datetime,
    sample_rate: float = 1.0,
) -> None:
    # Decide and build first, mutate states last: a failure leaves every state as it was.
    x = to_matrix([lead.state for lead in leads])
    probabilities = scorer.probabilities(x)
    policy = scorer.policy
    samples: list[FeatureSample] = []
    for lead, row, p in zip(leads, x, probabilities):
        if sampled(lead.cause_id, sample_rate):
            samples.append(
                FeatureSample(
                    lead_id=lead.state.lead_id,
                    model_version=scorer.version,
                    feature_spec_version=FEATURE_SPEC_VERSION,
                    features=row.tolist(),
                    probability=min(1.0, max(0.0, float(p))),
                    event_time=lead.cause_time or now,
                    scored_at=now,
                )
            )
    publish: list[tuple[int, int, str, int | None, str | None]] = []
    for i, (lead, p) in enumerate(zip(leads, probabilities)):
        state = lead.state
        score = to_score(float(p))
        grade = policy.grade(score)
        if policy.should_publish(state.score, state.grade, score, grade):
            publish.append((i, score, grade, state.score, state.grade))
    if not publish:
        result.samples.extend(samples)
        return
    explanations = scorer.explain(x[[row[0] for row in publish]])
    events: list[LeadScored] = []
    for (i, score, grade, previous, previous_grade), explanation in zip(publish, explanations):
        lead = leads[i]
        events.append(
            LeadScored(
                id=score_event_id(
                    lead.state.lead_id,
                    lead.cause_id,
                    scorer.version,
                    x[i],
                    previous,
                    previous_grade,
                ),
                lead_id=lead.state.lead_id,
                score=score,
                probability=round(float(probabilities[i]), 6),
                grade=grade,  # type: ignore[arg-type]
                previous_score=previous,
                previous_grade=previous_grade,  # type: ignore[arg-type]
                model_version=scorer.version,
                base_score=explanation.base_score,
                reasons=explanation.reasons,
                changes=explanation.changes_since(
                    lead.state.last_points,
                    lambda name, row=x[i]: scorer.word(name, row),
                    policy.top_changes,
                ),
                components=explanation.components,
                cause_event_id=lead.cause_id,
                cause_event_type=lead.cause_type,
                event_time=lead.cause_time or now,
                scored_at=now,
            )
        )
    for (i, score, grade, previous, previous_grade), event, explanation in zip(
        publish, events, explanations
    ):
        state = leads[i].state
        state.last_points = explanation.points
        state.prev_score, state.prev_grade = previous, previous_grade
        state.score, state.grade = score, grade
        state.score_cause_id = leads[i].cause_id
        state.model_version = scorer.version
        state.last_score_event = event.model_dump(mode="json")
    result.scores.extend(events)
    result.samples.extend(samples)


def home_partition(key: bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner (Java client, aiokafka) gives ``key``.

    Examples:
        >>> home_partition(b"lead-42", 8)
        7
    """
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions


def score_event_id(
    lead_id: str,
    cause_event_id: str,
    model_version: str,
    features: np.ndarray,
    previous_score: int | None,
    previous_grade: str | None,
) -> str:
    """A deterministic id: the same id always means the same score event content.

    It hashes everything the content follows from: the lead, the causing event, the
    model, the feature vector it scored and the previous score it reports. A replay that
    scores the same cause on a different state (after a crash, the lead's other input
    topics may be further along) gets a different id, so consumers that drop repeats by
    id never drop a different score.
    """
    digest = blake2b(digest_size=12)
    digest.update(f"{lead_id}\x00{cause_event_id}\x00{model_version}\x00".encode())
    digest.update(np.ascontiguousarray(features, dtype=np.float64).tobytes())
    digest.update(f"\x00{previous_score}\x00{previous_grade}".encode())
    return "sc_" + digest.hexdigest()


def dead_letter(record: InputRecord, code: str, reason: str, now: datetime) -> DeadLetter:
    """A dead letter that keeps the record whole, with why it was refused."""
    return DeadLetter(
        reason_code=code,
        reason=reason,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
        value_b64=base64.b64encode(record.value).decode() if record.value is not None else None,
        received_at=now,
    )
