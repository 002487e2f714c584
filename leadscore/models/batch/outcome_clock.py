"""Hold a lead's outcome until the worker has read the lead's activity up to the outcome's time.

The worker reads its input topics side by side, each at its own pace. After a restart, a
catch-up or a burst, the small outcome topic runs ahead of the activity topic: an outcome
is applied before the activity that came before it, and its training example would miss
that activity (a teammate measured 71 of 71 examples stale, most of them empty vectors
with a real label, when a time-ordered history was published in one burst).

:class:`OutcomeClock` is the worker's :class:`~leadscore.models.batch.records.OutcomeGate`.
An outcome at event time ``t`` on partition ``p`` is ready when, for each feature topic
(activity, profile) on ``p``, the worker has applied an event at or after ``t`` there, or
has read everything that topic partition holds. Otherwise nothing of it is applied: the
record is kept in Redis (hash ``outcomes:held``, written with the batch, before its offsets
are committed) and republished to its own partition once the feature topics pass ``t`` —
or once ``label_max_delay_s`` has passed, after which outcomes are taken as they come (a
feature topic whose partition never moves must not hold labels forever). The worker that
owns the partition checks the held outcomes every second and after every batch; a held
outcome survives a crash (Redis), and one republished twice is dropped as a repeated id.

The clock observes a whole micro-batch before any outcome in it is judged, so within the
batch an outcome is applied after its lead's events up to its time, wherever they sit
(:func:`~leadscore.models.batch.processing.apply_records`).

Pausing the outcome partition instead was tried and lost records: Faust drops records
already fetched for a partition that is paused, without seeking back.
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadscore.models.batch.records import InputRecord

log = logging.getLogger(__name__)

#: Header on a republished (deferred) outcome: when it was first deferred, epoch seconds.
DEFERRED_HEADER = "leadscore-deferred-since"

#: (topic, partition) -> the group's committed offset (where this worker started, before
#: it applied anything there) and the partition's end offset; ``None`` where unknown.
Progress = Callable[[str, int], tuple[int | None, int | None]]


@dataclass
class OutcomeClock:
    """Event-time progress of the feature topics, per partition (see the module notes).

    Args:
        feature_topics: the topics whose events make features (activity, profile).
        progress: the committed and end offsets of a topic partition.
        max_delay_s: the longest an outcome is held (wall clock, from its first deferral).
        clock: wall-clock seconds.
    """

    feature_topics: tuple[str, ...]
    progress: Progress
    max_delay_s: float = 300.0
    clock: Callable[[], float] = time.time
    latest_: dict[tuple[str, int], float] = field(default_factory=dict)
    next_: dict[tuple[str, int], int] = field(default_factory=dict)  # one past the last applied

    def observe(self, record: InputRecord, event_time: float | None) -> None:
        """A record was read: its partition's position moves on (a dead letter's too, or an
        outcome behind the last records of a partition would wait for records never applied)."""
        key = (record.topic, record.partition)
        if event_time is not None and event_time > self.latest_.get(key, -math.inf):
            self.latest_[key] = event_time
        if record.offset + 1 > self.next_.get(key, 0):
            self.next_[key] = record.offset + 1

    def ready(self, record: InputRecord, outcome_time: float) -> bool:
        since = deferred_since(record.headers)
        if since is not None and self.clock() - since >= self.max_delay_s:
            return True
        return self._passed(record.partition, outcome_time)

    def hold(self, record: InputRecord, outcome_time: float) -> tuple[str, bytes]:
        """The held outcome as a (field, JSON) pair for the Redis hash of held outcomes."""
        since = deferred_since(record.headers) or self.clock()
        headers = [
            [name, base64.b64encode(value).decode()]
            for name, value in record.headers
            if name != DEFERRED_HEADER
        ]
        entry = {
            "topic": record.topic,
            "partition": record.partition,
            "key": base64.b64encode(record.key or b"").decode(),
            "value": base64.b64encode(record.value or b"").decode(),
            "headers": headers,
            "outcome_t": outcome_time,
            "since": since,
        }
        return f"{record.topic}:{record.partition}:{record.offset}", orjson.dumps(entry)

    def due(self, entry: dict[str, Any]) -> bool:
        """Whether a held outcome (a :meth:`hold` entry) may go back to its topic now."""
        if self.clock() - float(entry["since"]) >= self.max_delay_s:
            return True
        return self._passed(int(entry["partition"]), float(entry["outcome_t"]))

    def _passed(self, partition: int, outcome_time: float) -> bool:
        for topic in self.feature_topics:
            if self.latest_.get((topic, partition), -math.inf) >= outcome_time:
                continue
            try:
                committed, end = self.progress(topic, partition)
            except Exception:  # a consumer internals change: do not hold labels on it
                log.debug(
                    "no progress for %s:%d; outcome not held", topic, partition, exc_info=True
                )
                continue
            position = self.next_.get((topic, partition), committed)
            if position is None or end is None or end < 0 or position >= end:
                continue  # read everything there is (or cannot tell): nothing earlier to wait for
            return False
        return True


def released(entry: dict[str, Any]) -> tuple[str, int, bytes, bytes, list[tuple[str, bytes]]]:
    """(topic, partition, key, value, headers) to republish a held outcome with."""
    headers = [(name, base64.b64decode(value)) for name, value in entry["headers"]]
    headers.append((DEFERRED_HEADER, repr(float(entry["since"])).encode()))
    return (
        entry["topic"], int(entry["partition"]), base64.b64decode(entry["key"]),
        base64.b64decode(entry["value"]), headers,
    )  # fmt: skip


def deferred_since(headers: Iterable[tuple[str, bytes]]) -> float | None:
    for name, value in headers:
        if name == DEFERRED_HEADER:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None
