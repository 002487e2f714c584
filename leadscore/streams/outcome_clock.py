"""Hold a lead's outcome until the worker has read the lead's activity up to the outcome's time.

The worker reads its input topics side by side, each at its own pace. After a restart, a
catch-up or a burst, the small outcome topic runs ahead of the activity topic: an outcome
is applied before the activity that came before it, and its training example would miss
that activity (a teammate measured 71 of 71 examples stale, most of them empty vectors
with a real label, when a time-ordered history was published in one burst).

:class:`OutcomeClock` is the worker's :class:`~leadscore.streams.processing.OutcomeGate`.
An outcome at event time ``t`` on partition ``p`` is ready when, for each feature topic
(activity, profile) on ``p``, the worker has applied an event at or after ``t`` there, or
has read everything that topic partition holds. Otherwise the outcome record is
republished to its own partition (nothing applied, nothing lost) and that outcome
partition is paused until the feature topics pass ``t`` — or until
``label_max_delay_s`` has passed, after which outcomes are taken as they come (a feature
topic whose partition never moves must not hold labels forever).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from leadscore.streams.processing import InputRecord

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
        outcome_topic: the topic to pause while its outcomes wait.
        progress: the committed and end offsets of a topic partition.
        pause, resume: pause or resume fetching one outcome partition.
        max_delay_s: the longest an outcome is held (wall clock, from its first deferral).
        clock: wall-clock seconds.
    """

    feature_topics: tuple[str, ...]
    outcome_topic: str
    progress: Progress
    pause: Callable[[str, int], None]
    resume: Callable[[str, int], None]
    max_delay_s: float = 300.0
    clock: Callable[[], float] = time.time
    latest_: dict[tuple[str, int], float] = field(default_factory=dict)
    next_: dict[tuple[str, int], int] = field(default_factory=dict)  # one past the last applied
    held_: dict[int, tuple[float, float]] = field(default_factory=dict)  # p -> (outcome t, since)
    deferred_: int = 0

    def observe(self, record: InputRecord, event_time: float) -> None:
        key = (record.topic, record.partition)
        if event_time > self.latest_.get(key, -math.inf):
            self.latest_[key] = event_time
        if record.offset + 1 > self.next_.get(key, 0):
            self.next_[key] = record.offset + 1

    def ready(self, record: InputRecord, outcome_time: float) -> bool:
        since = deferred_since(record.headers)
        if since is not None and self.clock() - since >= self.max_delay_s:
            return True
        return self._passed(record.partition, outcome_time)

    def defer(self, record: InputRecord, outcome_time: float) -> tuple[tuple[str, bytes], ...]:
        """Note a deferral; pause the outcome partition; the headers to republish it with."""
        self.deferred_ += 1
        since = deferred_since(record.headers) or self.clock()
        if record.partition not in self.held_:
            log.info(
                "outcomes on %s:%d wait: the activity/profile topics are not yet read up to %.0f",
                self.outcome_topic, record.partition, outcome_time,
            )  # fmt: skip
        held_t, held_since = self.held_.get(record.partition, (-math.inf, since))
        self.held_[record.partition] = (max(held_t, outcome_time), min(held_since, since))
        self.pause(self.outcome_topic, record.partition)
        headers = tuple(h for h in record.headers if h[0] != DEFERRED_HEADER)
        return (*headers, (DEFERRED_HEADER, repr(since).encode()))

    def release(self) -> list[int]:
        """Resume the outcome partitions whose feature topics have caught up; return them."""
        released = []
        for partition, (outcome_t, since) in list(self.held_.items()):
            if self._passed(partition, outcome_t) or self.clock() - since >= self.max_delay_s:
                del self.held_[partition]
                self.resume(self.outcome_topic, partition)
                log.info("outcomes on %s:%d resume", self.outcome_topic, partition)
                released.append(partition)
        return released

    def _passed(self, partition: int, outcome_time: float) -> bool:
        for topic in self.feature_topics:
            if self.latest_.get((topic, partition), -math.inf) >= outcome_time:
                continue
            try:
                committed, end = self.progress(topic, partition)
            except Exception:  # a consumer internals change: do not hold labels on it
                log.debug("no progress for %s:%d; outcome not held", topic, partition, exc_info=True)
                continue
            position = self.next_.get((topic, partition), committed)
            if position is None or end is None or end < 0 or position >= end:
                continue  # read everything there is (or cannot tell): nothing earlier to wait for
            return False
        return True


def deferred_since(headers: Iterable[tuple[str, bytes]]) -> float | None:
    for name, value in headers:
        if name == DEFERRED_HEADER:
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None
