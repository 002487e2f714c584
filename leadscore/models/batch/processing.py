"""One micro-batch of input records → new lead states, score events and dead letters.

This is the worker's logic with no stream engine in it: the Faust agent in
:mod:`leadscore.streams.scoring` only feeds it records and writes out what it
returns, so it can be tested, profiled and reused without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadscore.models.batch.labels import Labelled, labelled_now, training_examples
from leadscore.models.batch.order import application_order
from leadscore.models.batch.outputs import sampled
from leadscore.models.batch.records import (
    InputRecord,
    Limits,
    OutcomeGate,
    dead_letter,
    home_partition,
)
from leadscore.models.features.state import LeadState, apply_event
from leadscore.models.features.vector import FEATURE_SPEC_VERSION, to_matrix
from leadscore.models.privacy.minimise import minimised
from leadscore.models.scoring.events import explained_score, lead_scored
from leadscore.models.scoring.scorer import Scorer, to_score
from leadscore.schemas.decode import EventKind, decode_event
from leadscore.schemas.errors import InvalidEventError
from leadscore.schemas.events import OUTCOME_TYPES
from leadscore.schemas.learning import FeatureSample, TrainingExample
from leadscore.schemas.scores import DeadLetter, LeadScored

log = logging.getLogger(__name__)


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
        erased_skipped: events of erased leads from before their erasure, dropped.
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
    erased_skipped: int = 0


@dataclass(slots=True)
class _LeadWork:
    state: LeadState
    last_index: int
    rescore: bool = False
    cause_id: str = ""
    cause_type: str | None = None
    cause_time: datetime | None = None
    cause_recorded: float | None = None  # the causing record's broker timestamp


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
    outcome_gate: OutcomeGate | None = None,
    erased_at: Callable[[str], float | None] | None = None,
) -> BatchResult:
    """Apply a micro-batch of records to lead states and score the leads that changed.

    The one entry point of the batch logic: the worker runs it (off its event loop) on
    every micro-batch, and so do the offline replay, the benchmarks and the tests.

    Args:
        records: the batch, in consumption order (per partition: offset order).
        kind_of_topic: which kind of event each input topic carries.
        load_state: the stored state of a lead (as a dict), or ``None`` for a new lead.
        scorer: the current model and scoring policy.
        limits: decoding limits and the dedupe window.
        now: wall-clock time (for refusing future event times and stamping ``scored_at``).
        partitions_of_topic: partition count of each input topic; when given, records on
            the wrong partition for their lead are re-routed (see :class:`BatchResult`).
        sample_rate: the share of rescored vectors published on the features topic.
        outcome_gate: the worker's :class:`~leadscore.models.batch.outcome_clock.OutcomeClock`;
            a first outcome it says is not ready is deferred (``None``: every outcome is taken).
        erased_at: when a lead was erased (epoch s), ``None`` if never: its events up to
            then are dropped (counted in ``erased_skipped``), so a replay cannot bring it back.

    Returns:
        A :class:`BatchResult`. Nothing is written by this function. The event behind a
        lead that could not be scored is in ``scoring_failures`` and dead-lettered.
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
        outcome_gate=outcome_gate,
        erased_at=erased_at,
    )
    score_batch(batch, scorer, now)
    result = batch.result
    for index, reason in result.scoring_failures:
        result.dead_letters.append(
            (index, dead_letter(records[index], "scoring_error", reason, now))
        )
    return result


@dataclass(slots=True)
class AppliedBatch:
    """Records applied to states, not yet scored (the cheap half of a batch)."""

    result: BatchResult
    work: dict[str, _LeadWork]
    labelled: list[Labelled] = field(default_factory=list)
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
    erased_at: Callable[[str], float | None] | None = None,
) -> AppliedBatch:
    """Decode the records and apply them to lead states (see :func:`process_batch`).

    ``sample_rate`` is the share of rescored vectors published on the features topic
    (chosen by a hash of the causing event id, so a replay samples the same ones).
    ``outcome_gate`` (the worker's): a lead's first outcome that it says is not ready is
    not applied but deferred (:attr:`BatchResult.deferrals`); ``None`` applies every outcome.
    """
    result = BatchResult()
    work: dict[str, _LeadWork] = {}
    labelled: list[Labelled] = []
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
            if outcome_gate is not None:  # read, so the partition's position moves on
                outcome_gate.observe(record, None)
            continue
        event = minimised(event, limits.url_keep_params)  # before anything keeps it
        decoded.append(event)
        if outcome_gate is not None and event.type not in OUTCOME_TYPES:
            # The whole batch's progress first: an outcome early in the batch is judged
            # with the activity the same batch brings.
            outcome_gate.observe(record, event.time.timestamp())
    for index in application_order(decoded):
        record, event = records[index], decoded[index]
        lead_id: str = event.subject
        key = lead_id.encode()
        n_partitions = partitions_of_topic.get(record.topic) if partitions_of_topic else None
        home = home_partition(key, n_partitions) if n_partitions else None
        if record.key != key or (home is not None and record.partition != home):
            result.reroutes.append((index, lead_id, home))
            continue
        if erased_at is not None:
            until = erased_at(lead_id)
            if until is not None and event.time.timestamp() <= until:
                result.erased_skipped += 1
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
                labelled.append(labelled_now(lead.state, event))
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
        lead.last_index = max(lead.last_index, index)
        if event.type not in OUTCOME_TYPES:  # outcomes are labels, never features
            lead.rescore = True
            lead.cause_id, lead.cause_type, lead.cause_time = event.id, event.type, event.time
            lead.cause_recorded = record.timestamp
    for lead_id, lead in work.items():
        result.states[lead_id] = (lead.state, lead.last_index)
    return AppliedBatch(result=result, work=work, labelled=labelled, sample_rate=sample_rate)


def _scored_at(lead: _LeadWork, now: datetime) -> datetime:
    """When the causing record reached the broker (the same on every replay, so a repeated
    score id carries the same bytes); ``now`` for a record without a timestamp."""
    if lead.cause_recorded is None:
        return now
    return datetime.fromtimestamp(lead.cause_recorded, UTC)


def _previous_id(state: LeadState) -> str | None:
    last = state.last_score_event
    return None if last is None else str(last.get("id"))


def score_batch(batch: AppliedBatch, scorer: Scorer, now: datetime) -> None:
    """Score the leads that changed, with one model call, and explain those worth publishing.

    This is the CPU-heavy half: the worker runs it in an executor, off the event loop.
    """
    work, result = batch.work, batch.result
    if batch.labelled:
        examples, skipped = training_examples(batch.labelled, scorer, now)
        result.examples.extend(examples)
        result.examples_skipped += skipped
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
    for (i, _, _, previous, previous_grade), explanation in zip(publish, explanations):
        lead = leads[i]
        fields = explained_score(
            scorer, explanation, x[i], probabilities[i], lead.state.last_points
        )
        events.append(
            lead_scored(
                fields,
                lead_id=lead.state.lead_id,
                row=x[i],
                previous_score=previous,
                previous_grade=previous_grade,
                cause_event_id=lead.cause_id,
                cause_event_type=lead.cause_type,
                event_time=lead.cause_time or now,
                scored_at=_scored_at(lead, now),
                previous_id=_previous_id(lead.state),
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
