"""Outcomes wait for the lead's activity: OutcomeClock and the deferral in apply_records."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from leadscore.models.batch.outcome_clock import (
    DEFERRED_HEADER,
    OutcomeClock,
    deferred_since,
    released,
)
from leadscore.models.batch.processing import apply_records
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.schemas.decode import EventKind

NOW = datetime(2026, 11, 27, tzinfo=UTC)
KINDS = {"a": EventKind.ACTIVITY, "p": EventKind.PROFILE, "o": EventKind.OUTCOME}


class Offsets:
    """Committed and end offsets of the feature topics as the clock sees them."""

    def __init__(self) -> None:
        self.committed: dict[tuple[str, int], int] = {}
        self.ends: dict[tuple[str, int], int] = {}

    def progress(self, topic: str, partition: int) -> tuple[int | None, int | None]:
        return self.committed.get((topic, partition)), self.ends.get((topic, partition))


def clock_for(offsets: Offsets, now: list[float]) -> OutcomeClock:
    return OutcomeClock(("a", "p"), offsets.progress, max_delay_s=60.0, clock=lambda: now[0])


def record(topic: str, offset: int, headers: tuple = (), value: bytes = b"v") -> InputRecord:
    return InputRecord(topic, 0, offset, b"lead-1", value, headers)


def test_an_outcome_waits_while_activity_before_it_is_unread() -> None:
    offsets, now = Offsets(), [1000.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 0, 10  # 10 activity records unread
    clock.observe(record("a", 3), event_time=50.0)
    assert not clock.ready(record("o", 0), outcome_time=100.0)
    field, raw = clock.hold(record("o", 7, headers=(("trace", b"x"),)), outcome_time=100.0)
    entry = orjson.loads(raw)
    assert field == "o:0:7" and entry["since"] == 1000.0
    assert not clock.due(entry)
    clock.observe(record("a", 6), event_time=120.0)  # activity read past the outcome's time
    assert clock.due(entry) and clock.ready(record("o", 1), outcome_time=100.0)
    topic, partition, key, value, headers = released(entry)
    assert (topic, partition, key, value) == ("o", 0, b"lead-1", b"v")
    assert headers == [("trace", b"x"), (DEFERRED_HEADER, b"1000.0")]


def test_a_caught_up_or_unknown_topic_does_not_hold_outcomes() -> None:
    offsets, now = Offsets(), [0.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 10, 10  # everything read
    assert clock.ready(record("o", 0), outcome_time=1e9)  # "p" unknown, "a" caught up
    offsets.committed[("a", 0)] = 4
    clock.observe(record("a", 9), event_time=5.0)  # applied up to the end since the start
    assert clock.ready(record("o", 0), outcome_time=1e9)


def test_a_held_outcome_goes_back_after_the_max_delay_keeping_its_first_time() -> None:
    offsets, now = Offsets(), [1000.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 0, 10
    _, raw = clock.hold(record("o", 0), outcome_time=100.0)
    entry = orjson.loads(raw)
    now[0] = 1059.0
    assert not clock.due(entry)
    *_, headers = released(entry)
    again = record("o", 5, headers=tuple(headers))
    assert deferred_since(again.headers) == 1000.0
    assert not clock.ready(again, outcome_time=100.0)
    assert (
        orjson.loads(clock.hold(again, outcome_time=100.0)[1])["since"] == 1000.0
    )  # first time kept
    now[0] = 1060.0
    assert clock.due(entry) and clock.ready(again, outcome_time=100.0)


def _event(type_: str, event_id: str, t: str, data: dict) -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": event_id, "source": "test", "type": type_, "subject": "lead-1",
         "time": t, "data": data}
    )  # fmt: skip


def test_apply_records_defers_an_outcome_the_gate_holds_and_applies_nothing_of_it() -> None:
    offsets, now = Offsets(), [1000.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 0, 5
    outcome = InputRecord(
        "o", 0, 0, b"lead-1", _event("lead.converted", "o1", "2026-11-20T00:00:00Z", {})
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
        _event("lead.page_viewed", "a1", "2026-11-21T00:00:00Z", {"url": "/pricing", "duration_s": 30}),
    )  # fmt: skip
    batch = apply_records(
        [outcome, visit], kind_of_topic=KINDS, load_state=lambda _: None, limits=Limits(), now=NOW,
        outcome_gate=clock,
    )  # fmt: skip
    assert batch.result.deferrals == []
    assert len(batch.labelled) == 1


def test_an_outcome_sees_the_batch_s_earlier_activity_that_sits_behind_it() -> None:
    """The batch interleaves topics: activity from before the label can follow the outcome.

    The gate judges the outcome with the whole batch's progress, so the outcome waits for
    its lead's events of the batch up to its time, and none after it.
    """
    offsets, now = Offsets(), [1000.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 0, 5

    def visit(offset: int, event_id: str, t: str) -> InputRecord:
        data = {"url": "/pricing", "duration_s": 30}
        return InputRecord("a", 0, offset, b"lead-1", _event("lead.page_viewed", event_id, t, data))

    outcome = InputRecord(
        "o", 0, 0, b"lead-1", _event("lead.converted", "o1", "2026-11-20T00:00:00Z", {})
    )
    records = [
        outcome,
        visit(0, "a1", "2026-11-18T00:00:00Z"),
        visit(1, "a2", "2026-11-19T00:00:00Z"),
        visit(2, "a3", "2026-11-21T00:00:00Z"),  # after the label
    ]
    batch = apply_records(
        records, kind_of_topic=KINDS, load_state=lambda _: None, limits=Limits(), now=NOW,
        outcome_gate=clock,
    )  # fmt: skip
    assert batch.result.deferrals == [] and batch.result.applied == 4
    (label,) = batch.labelled
    assert label.feature_time == datetime(2026, 11, 19, tzinfo=UTC).timestamp()
    state, _ = batch.result.states["lead-1"]
    assert state.last_event_t == datetime(2026, 11, 21, tzinfo=UTC).timestamp()
    assert [event.id for _, event in batch.result.activity] == ["a1", "a2", "o1", "a3"]


def test_a_malformed_last_record_does_not_hold_outcomes_behind_it() -> None:
    """The partition's last records are dead letters: read all the same, nothing to wait for."""
    offsets, now = Offsets(), [1000.0]
    clock = clock_for(offsets, now)
    offsets.committed[("a", 0)], offsets.ends[("a", 0)] = 0, 3
    good = orjson.dumps(
        {"specversion": "1.0", "id": "e1", "source": "/t", "type": "lead.page_viewed",
         "subject": "lead-1", "time": "2026-11-26T00:00:00Z", "data": {"url": "https://x.io/"}}
    )  # fmt: skip
    apply_records(
        [record("a", 0, value=good), record("a", 1, value=b"{not json"), record("a", 2, value=b"")],
        kind_of_topic=KINDS, load_state=lambda _: None, limits=Limits(), now=NOW,
        outcome_gate=clock,
    )  # fmt: skip
    assert clock.ready(record("o", 0), outcome_time=NOW.timestamp())
