"""Faust's next committable offset, computed so an offset acked twice cannot stall commits.

Faust keeps, per input partition, the offsets acknowledged since the last commit in
``Consumer._acked`` (a list) and the offsets it never received in ``Consumer._gap``
(compaction, transaction markers). At each commit ``Consumer._new_offset`` adds the gaps
below the highest acked offset to the list, sorts it, takes the first run of consecutive
numbers and commits the run's last offset + 1. Nothing makes the list a set:

- ``_new_offset`` appends gap offsets without checking they were not acked too, and
- after a restart with a backlog, ``Recovery._resume_streams`` resumes the input
  partitions, then ``perform_seek()`` resets ``_read_offset`` to the committed offset
  while the fetcher still delivers records it read before the seek; the next record then
  looks like it skipped every offset read before it, and ``_drain_messages`` records
  those delivered offsets as a gap (a phantom gap).

With every offset of a stretch in the list twice, ``faust.utils.functional.
consecutive_numbers`` splits ``[100, 100, 101, 101, ...]`` into runs of one or two, so
each commit advances the partition by one offset: measured, committed offsets ~1,500
behind on 4 partitions for minutes after everything was processed (a later restart
replays all of it). Offsets below the committed offset left in the list cost a commit
each the same way.

:func:`install_acked_offsets_fix` replaces ``Consumer._new_offset`` with the same
computation over a *set*: repeats and offsets below the committed offset are dropped
before the first run is taken. It also counts gap offsets as done only up to the highest
acked offset; Faust added whole gap intervals, so a phantom gap let a commit pass records
read before the seek and still queued, unprocessed (lost if the worker died then). A real
gap (offsets the broker never returned) always ends at the record read right after it,
which must be acked before the gap is used, so for real gaps, and whenever the list held
no repeats, the committed offset is the one Faust would have chosen, on every broker.
"""

from __future__ import annotations

import logging

from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers

__all__ = ["first_committable_run", "install_acked_offsets_fix"]

log = logging.getLogger(__name__)


def first_committable_run(done: set[int], committed: int | None) -> list[int]:
    """The offsets of ``done`` a commit may cover now, lowest first: ``[]`` if none.

    Args:
        done: offsets acknowledged or known absent since the last commit, repeats gone.
        committed: the partition's committed offset (the next one to read), if any.

    The run must start no more than one past ``committed`` (Faust's own slack: its
    ``_read_offset`` points at the last record read, not the next) and is the first run
    of consecutive offsets at or above it.

    Examples:
        >>> first_committable_run({100, 101, 102, 105}, 100)
        [100, 101, 102]
        >>> first_committable_run({99, 100, 101}, 100)  # 99 was committed already
        [100, 101]
        >>> first_committable_run({103, 104}, 100)  # 100..102 still pending
        []
    """
    pending = sorted(offset for offset in done if committed is None or offset >= committed)
    if not pending or (committed and pending[0] - committed > 1):
        return []
    return list(next(consecutive_numbers(pending)))


def _new_offset(self: Consumer, tp: TP) -> int | None:
    """Faust's ``Consumer._new_offset``, over a set of offsets (see the module docstring)."""
    with ack_lock:  # ``Consumer.ack`` appends under it; the list is rewritten here
        acked = self._acked[tp]
        if not acked:
            return None
        done = set(acked)
        doubled = len(acked) - len(done)  # acked twice
        gap_for_tp = self._gap[tp]
        if gap_for_tp:
            # Gap offsets up to the highest acked one count as done and leave the tree.
            # Faust took whole intervals, past the highest acked offset too: a phantom gap
            # then covered records still waiting in a stream queue.
            highest = max(done)
            candidates = gap_for_tp.overlap(0, highest)
            for interval in candidates:
                in_gap = set(range(interval.begin, min(interval.end, highest + 1)))
                # A real gap holds one acked offset: it ends at the record read after it.
                doubled += max(len(in_gap & done) - 1, 0)
                done |= in_gap
            if candidates:
                gap_for_tp.chop(0, highest + 1)
        committed = self._committed_offset[tp]
        stale = {offset for offset in done if committed is not None and offset < committed}
        batch = first_committable_run(done, committed)
        acked[:] = sorted(done - stale - set(batch))
        self._acked_index[tp].difference_update(stale)
        self._acked_index[tp].difference_update(batch)
    if doubled or stale:
        log.info(
            "%s:%d: %d offset(s) counted twice and %d below the committed offset %s "
            "ignored (Faust's phantom gap after a seek)",
            tp.topic, tp.partition, doubled, len(stale), committed,
        )  # fmt: skip
    return batch[-1] + 1 if batch else None


def install_acked_offsets_fix() -> None:
    """Replace ``Consumer._new_offset`` with :func:`_new_offset` (idempotent).

    Safe on any broker: when no offset is counted twice and no gap reaches past the
    highest acked offset (real gaps never do), the committed offset is the one Faust
    would have chosen.
    """
    if getattr(Consumer._new_offset, "_leadscore_patched", False):
        return
    _new_offset._leadscore_patched = True  # type: ignore[attr-defined]
    _new_offset.__wrapped__ = Consumer._new_offset  # type: ignore[attr-defined]  # Faust's, for tests
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
