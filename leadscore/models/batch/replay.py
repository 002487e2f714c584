"""Run lead events through the worker's batch logic offline, with states in a dict.

The same :func:`~leadscore.models.batch.processing.process_batch` the Faust agent runs, minus
Kafka: what it returns for a list of events is what the worker would publish (score
events, ``leads.features.v1`` samples, ``leads.training.v1`` examples). Benchmarks and
tests of the closed loop use it to produce those records at speed, and to check the
worker's records against the truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from leadscore.models.batch.processing import BatchResult, process_batch
from leadscore.models.batch.records import InputRecord, Limits
from leadscore.models.scoring.scorer import Scorer
from leadscore.schemas.decode import EventKind, kind_of

__all__ = ["replay"]

_TOPIC = {
    EventKind.ACTIVITY: "activity",
    EventKind.PROFILE: "profile",
    EventKind.OUTCOME: "outcome",
}


def replay(
    events: Iterable[dict[str, Any]],
    scorer: Scorer,
    *,
    batch_size: int = 256,
    sample_rate: float = 1.0,
    now: datetime | None = None,
) -> Iterator[BatchResult]:
    """Yield the worker's result for each batch of ``events`` (CloudEvents dicts, in order).

    ``now`` stamps ``scored_at`` and bounds event times (default: far in the future, so
    simulated histories of any date are accepted).
    """
    now = now or datetime(2100, 1, 1, tzinfo=UTC)
    states: dict[str, dict[str, Any]] = {}
    kinds = {name: kind for kind, name in _TOPIC.items()}
    limits = Limits()
    batch: list[InputRecord] = []

    def run() -> BatchResult:
        result = process_batch(
            batch, kind_of_topic=kinds, load_state=states.get, scorer=scorer, limits=limits, now=now,
            sample_rate=sample_rate,
        )  # fmt: skip
        for lead_id, (state, _) in result.states.items():
            states[lead_id] = state.to_dict()
        batch.clear()
        return result

    for offset, event in enumerate(events):
        topic = _TOPIC[kind_of(event["type"])]
        batch.append(InputRecord(topic, 0, offset, event["subject"].encode(), orjson.dumps(event)))
        if len(batch) >= batch_size:
            yield run()
    if batch:
        yield run()
