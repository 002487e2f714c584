"""Erasure in the worker: the requests of ``leads.erasures.v1``, acted on by the worker that
holds the lead (the topic is co-partitioned with the input topics and read by the same agent).

For each request the worker, before it applies the batch's events:

1. remembers when the lead was erased in the ``erased_leads`` table (pseudonym -> time;
   changelogged): from then on its events up to that time are dropped, so a replay of old
   input cannot bring it back, and later events start a new lead;
2. deletes the lead's state from the ``lead_state`` table (a tombstone on its changelog);
3. deletes what Redis holds under the lead's id (score, history, state, activity, its place
   on the leaderboard), its dead-letter keys and its place in the retention index, and
   counts it on the receipt;
4. publishes ``lead.erased`` on ``leads.scores.v1``. The webhook agent, reading it, drops the
   lead's queued webhooks, queues ``lead.erased`` for every receiver and then deletes the
   last link from the lead's pseudonym to its id (``P ids``), which completes the receipt.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

import faust
import orjson
from faust.streams import _current_event
from faust.types import TableT
from pydantic import ValidationError

from leadscore.infra.privacy.dead_letters import forget_dead_letter_keys
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.redis_store import ScoreStore
from leadscore.schemas.privacy import ErasureRequested, LeadErased
from leadscore.settings import Settings

log = logging.getLogger(__name__)


def erased_event_id(erasure_id: str, pseudonym: str) -> str:
    """The id of a lead's ``lead.erased`` event: the same however often the request is read."""
    return f"le_{erasure_id}_{pseudonym.removeprefix('p_')[:16]}"


class Eraser:
    """Acts on erasure requests in the scoring agent (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        refs: LeadRefs,
        lead_state: TableT[bytes, bytes],
        erased: TableT[bytes, bytes],
    ) -> None:
        self.settings = settings
        self.refs = refs
        self.lead_state = lead_state
        self.erased = erased

    def erased_at(self, lead_id: str) -> float | None:
        """When the lead was erased (epoch s), or ``None``: for the batch logic."""
        raw = self.erased.get(self.refs.table(lead_id).encode())
        return float(raw) if raw is not None else None

    async def erase(
        self,
        app: faust.App,
        events: Sequence[faust.EventT[bytes]],
        store: ScoreStore,
        ids: LeadIds,
    ) -> list[str]:
        """Act on the erasure requests among ``events``; returns the pseudonyms erased.

        The table first (in order), then Redis in one round trip per step for the whole
        batch, then the ``lead.erased`` notices.
        """
        requests: list[ErasureRequested] = []
        for event in events:
            try:
                request = ErasureRequested.model_validate_json(event.message.value or b"")
            except ValidationError as exc:
                log.warning(
                    "erasure request %s[%d]@%d is not valid, skipped: %s",
                    event.message.topic,
                    event.message.partition,
                    event.message.offset,
                    exc.errors()[0]["msg"],
                )
                continue
            self._forget_state(event, request)
            requests.append(request)
        if not requests:
            return []
        pseudonyms = [r.pseudonym for r in requests]
        lead_ids = await ids.lead_ids(pseudonyms)
        removed = await store.forget_many([lead_ids.get(p) for p in pseudonyms])
        keys = await forget_dead_letter_keys(store.client, self.settings.redis_prefix, *pseudonyms)
        for pseudonym, gone in zip(pseudonyms, removed, strict=True):
            if keys[pseudonym]:  # its dead letters: unreadable now
                gone["dead_letter_key"] = keys[pseudonym]
        await ids.erased_many(
            [(r.pseudonym, r.erasure_id, gone) for r, gone in zip(requests, removed, strict=True)]
        )
        for request in requests:
            lead_id = lead_ids.get(request.pseudonym)
            topic_ref = lead_id if (self.refs.plain_topics and lead_id) else request.pseudonym
            notice = LeadErased(
                id=erased_event_id(request.erasure_id, request.pseudonym),
                lead_id=topic_ref,
                erasure_id=request.erasure_id,
                erased_at=request.requested_at,
            )
            await app.producer.send(
                self.settings.scores_topic,
                topic_ref.encode(),
                orjson.dumps(notice.model_dump(mode="json")),
                None,
                None,
                None,
            )
        log.info(
            "erased %d leads (erasures %s)", len(requests), sorted({r.erasure_id for r in requests})
        )
        return pseudonyms

    def _forget_state(self, event: faust.EventT[bytes], request: ErasureRequested) -> None:
        """Remember when the lead was erased, and tombstone its state."""
        key = request.pseudonym.encode()
        # Table writes go to the changelog partition of the current event: this request's,
        # which the eraser wrote to the lead's own partition.
        _current_event.set(weakref.ref(event))
        previous = self.erased.get(key)
        at = request.requested_at.timestamp()
        if previous is None or float(previous) < at:
            self.erased[key] = repr(at).encode()
        if self.lead_state.get(key) is not None:
            del self.lead_state[key]
