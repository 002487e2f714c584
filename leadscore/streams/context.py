"""What the worker's agents share: the settings, the current model, Redis, the scoring thread."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.streams import Stream

from leadscore.infra.model_events import ModelFollower
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.redis_store import ScoreStore, connect
from leadscore.models.batch.processing import BatchResult
from leadscore.models.batch.records import InputRecord
from leadscore.settings import Settings

#: Pseudonyms a worker remembers having written to Redis (older ones are written again).
MAPPED_CACHE = 200_000


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
    last_batch_at: float | None = None
    """When the scoring agent last finished a batch (epoch seconds), for the heartbeat."""
    read_to: dict[tuple[str, int], int] = field(default_factory=dict)
    """The end of what the scoring agent has read: (topic, partition) -> last offset + 1."""
    _refs: LeadRefs | None = None
    _keyring: Keyring | None = None
    _ids: LeadIds | None = None
    _mapped: OrderedDict[str, None] = field(default_factory=OrderedDict)
    """Pseudonyms this worker has written to ``P ids`` (the newest :data:`MAPPED_CACHE`)."""

    @property
    def keyring(self) -> Keyring:
        """The data keys that seal lead states and activity (read once)."""
        if self._keyring is None:
            self._keyring = Keyring.from_settings(self.settings)
        return self._keyring

    @property
    def refs(self) -> LeadRefs:
        """The deployment's lead pseudonyms (the secret read once)."""
        if self._refs is None:
            self._refs = LeadRefs.from_settings(self.settings)
        return self._refs

    def ids(self) -> LeadIds:
        """The pseudonym -> lead id map in Redis."""
        if self._ids is None:
            self._ids = LeadIds(
                self.store().client,
                self.settings.redis_prefix,
                plain_topics=self.refs.plain_topics,
                refs=self.refs,
            )
        return self._ids

    async def remember_leads(self, result: BatchResult) -> None:
        """Write the batch's new pseudonyms to ``P ids``, and each lead's last event time to
        the retention index, before anything about them is published."""
        mapping: dict[str, str] = {}
        seen: dict[str, float] = {}
        for lead_id, (state, _) in result.states.items():
            pseudonym = self.refs.table(lead_id)
            if pseudonym in self._mapped:
                self._mapped.move_to_end(pseudonym)
            else:
                mapping[pseudonym] = lead_id
            if state.last_event_t is not None:
                seen[pseudonym] = state.last_event_t
        if not mapping and not seen:
            return
        ids = self.ids()
        pipe = ids.client.pipeline(transaction=False)
        ids.remember(pipe, mapping)
        if seen:
            pipe.zadd(ids.seen_key, seen)
        await pipe.execute()
        for pseudonym in mapping:
            self._mapped[pseudonym] = None
        while len(self._mapped) > MAPPED_CACHE:
            self._mapped.popitem(last=False)

    def forget_mapped(self, pseudonyms: Sequence[str]) -> None:
        """These leads were erased: write their pseudonyms again if they come back."""
        for pseudonym in pseudonyms:
            self._mapped.pop(pseudonym, None)

    def note_read(self, records: Sequence[InputRecord]) -> None:
        """Remember how far each input partition has been read (for :mod:`..broker_watch`)."""
        read_to = self.read_to
        for record in records:
            where = (record.topic, record.partition)
            if record.offset >= read_to.get(where, 0):
                read_to[where] = record.offset + 1

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
                keyring=self.keyring,
            )
        return self._store


def micro_batches(
    stream: faust.StreamT[bytes], settings: Settings
) -> AsyncIterator[Sequence[faust.EventT[bytes]]]:
    """The stream's events in micro-batches of up to ``batch_size``, waiting at most
    ``batch_window_s`` for a batch to fill (Faust's ``Stream.take_events``)."""
    batches = cast(Stream[bytes], stream).take_events(
        settings.batch_size, within=settings.batch_window_s
    )
    return cast(AsyncIterator[Sequence[faust.EventT[bytes]]], batches)


def input_record(event: faust.EventT[bytes]) -> InputRecord:
    """The record a Faust stream event carries: where it came from, its bytes and headers."""
    message = event.message
    return InputRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in _headers(message.headers)),
        timestamp=message.timestamp or None,
    )


def _headers(headers: Any) -> list[tuple[str, bytes]]:
    """A message's headers as (name, value) pairs (Faust types them loosely)."""
    return list(headers or ())
