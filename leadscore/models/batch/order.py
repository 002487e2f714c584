"""The order a micro-batch's events are applied in: consumption order, outcomes after their
lead's earlier events (see :func:`application_order`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leadscore.schemas.events import OUTCOME_TYPES


def application_order(decoded: Sequence[Any]) -> list[int]:
    """The order to apply a batch's decoded events in (indices; ``None`` entries left out).

    Consumption order, except that an outcome waits for the rest of its lead's events in
    the batch up to its own time. The batch interleaves the input topics, and the outcome
    gate judged the outcome with the progress of the whole batch: an activity from before
    the outcome may sit later in the batch than the outcome itself, and the label must
    see it. An outcome is applied just before its lead's first later event that happened
    after it, or at the end of the batch.
    """
    order: list[int] = []
    pending: dict[str, list[int]] = {}
    for index, event in enumerate(decoded):
        if event is None:
            continue
        if event.type in OUTCOME_TYPES:
            pending.setdefault(event.subject, []).append(index)
            continue
        waiting = pending.get(event.subject)
        if waiting:
            earlier = [i for i in waiting if decoded[i].time < event.time]
            order.extend(earlier)
            pending[event.subject] = [i for i in waiting if i not in earlier]
        order.append(index)
    order.extend(sorted(i for waiting in pending.values() for i in waiting))
    return order
