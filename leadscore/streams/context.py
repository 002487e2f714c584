"""What the worker's agents share: the settings, the current model, Redis, the scoring thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import faust

from leadscore.infra.model_events import ModelFollower
from leadscore.infra.redis_store import ScoreStore, connect
from leadscore.models.batch.records import InputRecord
from leadscore.settings import Settings


@dataclass
class WorkerContext:
    """One per worker process, handed to every agent module's ``attach``.

    Attributes:
        settings: configuration.
        models: the current scorer, swapped between micro-batches when the champion changes.
        executor: one thread: batches are processed in order, off the event loop.
    """

    settings: Settings
    models: ModelFollower
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
    )
    _store: ScoreStore | None = None

    def store(self) -> ScoreStore:
        """The Redis store of scores, made on first use (inside the worker's event loop)."""
        if self._store is None:
            s = self.settings
            self._store = ScoreStore(
                connect(s.redis_url, max_connections=s.redis_max_connections),
                s.redis_prefix,
                s.history_length,
                activity_length=s.activity_length,
                trends_retention_s=int(s.trends_retention_days * 86_400),
            )
        return self._store


def input_record(event: faust.EventT) -> InputRecord:
    """The record a Faust stream event carries: where it came from, its bytes and headers."""
    message = event.message
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in (message.headers or ())),
    )
