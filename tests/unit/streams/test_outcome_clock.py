"""Outcomes wait for the lead's activity: OutcomeClock and the deferral in apply_records."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from leadscore.schemas.decode import EventKind
from leadscore.streams.outcome_clock import DEFERRED_HEADER, OutcomeClock, deferred_since
from leadscore.streams.processing import InputRecord, Limits, apply_records

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)
KINDS = {"a": EventKind.ACTIVITY, "p": EventKind.PROFILE, "o": EventKind.OUTCOME}


class Broker:
    """Offsets of the feature topics as the clock sees them, and what it paused."""

    def __init__(self) -> None:
        self.committed: dict[tuple[str, int], int] = {}
        self.ends: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()

    def progress(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        return self.committed.get((topic, partition)), self.ends.get((topic, partition))


def clock_for(broker: Broker, now: list[float]) -> OutcomeClock:
    return OutcomeClock(
        feature_topics=("a", "p"),
        outcome_topic="o",
        progress=broker.progress,
        pause=lambda t, p: broker.paused.add((t, p)),
        resume=lambda t, p: broker.paused.discard((t, p)),
        max_delay_s=60.0,
        clock=lambda: now[0],
    )


def record(topic: str, offset: int, headers: tuple = ()) -> InputRecord:
    return InputRecord(topic, 0, offset, b"lead-1", b"", headers)


def test_an_outcome_waits_while_activity_before_it_is_unread() -> None:
    broker, now = Broker(), [1000.0]
    clock = clock_for(broker, now)
    broker.committed[("a", 0)], broker.ends[("a", 0)] = 0, 10  # 10 activity records unread
    clock.observe(record("a", 3), event_time=50.0)
    assert not clock.ready(record("o", 0), outcome_time=100.0)
    headers = clock.defer(record("o", 0), outcome_time=100.0)
    assert ("o", 0) in broker.paused
    assert deferred_since(headers) == 1000.0
    assert clock.release() == []  # activity still behind
    clock.observe(record("a", 6), event_time=120.0)  # activity read past the outcome's time
    assert clock.ready(record("o", 1), outcome_time=100.0)
    assert clock.release() == [0] and not broker.paused


def test_a_caught_up_or_unknown_topic_does_not_hold_outcomes() -> None:
    broker, now = Broker(), [0.0]
    clock = clock_for(broker, now)
    broker.committed[("a", 0)], broker.ends[("a", 0)] = 10, 10  # everything read
    assert clock.ready(record("o", 0), outcome_time=1e9)  # "p" unknown, "a" caught up
    clock.observe(record("a", 9), event_time=5.0)
    broker.ends[("a", 0)] = 10
    assert clock.ready(record("o", 0), outcome_time=1e9)


def test_a_held_outcome_is_taken_after_the_max_delay() -> None:
    broker, now = Broker(), [1000.0]
    clock = clock_for(broker, now)
    broker.committed[("a", 0)], broker.ends[("a", 0)] = 0, 10
    headers = clock.defer(record("o", 0), outcome_time=100.0)
    now[0] = 1059.0
    assert not clock.ready(record("o", 5, headers), outcome_time=100.0)
    again = clock.defer(record("o", 5, headers), outcome_time=100.0)
    assert deferred_since(again) == 1000.0  # the first deferral's time is kept
    assert [h for h in again if h[0] == DEFERRED_HEADER] == [(DEFERRED_HEADER, b"1000.0")]
    now[0] = 1060.0
    assert clock.ready(record("o", 6, again), outcome_time=100.0)
    assert clock.release() == [0]


def _event(kind: str, type_: str, event_id: str, t: str, data: dict) -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": event_id, "source": "test", "type": type_, "subject": "lead-1",
         "time": t, "data": data}
    )  # fmt: skip


def test_apply_records_defers_an_outcome_the_gate_holds_and_applies_nothing_of_it() -> None:
    broker, now = Broker(), [1000.0]
    clock = clock_for(broker, now)
    broker.committed[("a", 0)], broker.ends[("a", 0)] = 0, 5
    outcome = InputRecord(
        "o", 0, 0, b"lead-1", _event("o", "lead.converted", "o1", "2026-11-20T00:00:00Z", {})
    )
    batch = apply_records(
        [outcome], kind_of_topic=KINDS, load_state=lambda _: None, limits=Limits(), now=NOW,
        outcome_gate=clock,
    )  # fmt: skip
    assert [i for i, _ in batch.result.deferrals] == [0]
    assert batch.labelled == [] and batch.result.states == {}
    # Activity from before the outcome arrives in the same batch as the outcome: it is taken.
    visit = InputRecord(
        "a", 0, 0, b"lead-1",
        _event("a", "lead.page_viewed", "a1", "2026-11-21T00:00:00Z", {"url": "/pricing", "duration_s": 30}),
    )  # fmt: skip
    batch = apply_records(
        [outcome, visit], kind_of_topic=KINDS, load_state=lambda _: None, limits=Limits(), now=NOW,
        outcome_gate=clock,
    )  # fmt: skip
    assert batch.result.deferrals == []
    assert len(batch.labelled) == 1
