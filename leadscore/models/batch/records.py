"""Records as the worker consumes them, the input limits, and where a lead's records belong.

The worker hands the batch logic :class:`InputRecord` s; a record that cannot be used
becomes a :func:`dead_letter` that keeps it whole.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiokafka.partitioner import murmur2

from leadscore.models.privacy.minimise import DEFAULT_KEEP
from leadscore.schemas.scores import DeadLetter

__all__ = ["InputRecord", "Limits", "OutcomeGate", "dead_letter", "home_partition"]


@dataclass(frozen=True, slots=True)
class InputRecord:
    """A record as consumed: where it came from, its raw bytes and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float | None = None
    """The record's broker timestamp (seconds since the epoch), when it has one."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits applied while decoding."""

    max_event_bytes: int = 65_536
    max_future_skew_s: float = 300.0
    dedupe_window: int = 256
    url_keep_params: tuple[str, ...] = DEFAULT_KEEP
    """Query parameters kept in URLs (:func:`~leadscore.models.privacy.minimise.clean_url`)."""


class OutcomeGate(Protocol):
    """Whether an outcome may be turned into a training example now (see :class:`OutcomeClock`)."""

    def observe(self, record: InputRecord, event_time: float | None) -> None:
        """A record was read (``event_time``: its event's time, ``None`` if it had none)."""

    def ready(self, record: InputRecord, outcome_time: float) -> bool: ...


def home_partition(key: bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner (Java client, aiokafka) gives ``key``.

    Examples:
        >>> home_partition(b"lead-42", 8)
        7
    """
    return int(murmur2(key) & 0x7FFFFFFF) % n_partitions


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
