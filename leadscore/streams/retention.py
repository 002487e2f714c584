"""Retention: leads inactive for ``LEADSCORE_LEAD_RETENTION_DAYS`` are forgotten like an erasure.

Every worker sweeps the retention index (``P seen``: pseudonym -> the lead's last event
time, written with each batch) every ``LEADSCORE_RETENTION_SWEEP_S``. It claims the leads
whose last event is older than the retention (a ZREM: one worker wins each lead), opens one
receipt per sweep (requested by ``retention``) and writes their erasure requests to the
erasures topic, where the worker that holds each lead erases it as any other
(:mod:`leadscore.streams.erasure`). A lead whose pseudonym Redis can no longer turn into
an id (its Redis data was lost) is dropped from the index: nothing tells where its events are.
"""

from __future__ import annotations

import logging
import time
from typing import cast

import faust

from leadscore.infra.privacy.erasure import erasure_requests, new_receipt
from leadscore.settings import Settings
from leadscore.streams.context import WorkerContext

log = logging.getLogger(__name__)

#: Leads claimed per sweep round (a sweep goes on while rounds come back full).
_ROUND = 500


def attach_retention(app: faust.App, worker: WorkerContext) -> None:
    """The sweep timer (nothing when LEADSCORE_LEAD_RETENTION_DAYS is 0)."""
    s = worker.settings
    if s.lead_retention_days <= 0:
        return

    @app.timer(interval=s.retention_sweep_s)
    async def forget_inactive_leads() -> None:
        try:
            n = await sweep(app, worker, s, time.time())
        except Exception:  # Redis or the broker away: the next sweep tries again
            log.warning("retention sweep failed; the next one tries again", exc_info=True)
            return
        if n:
            log.info(
                "retention: %d leads inactive for %g days sent for erasure",
                n,
                s.lead_retention_days,
            )


async def sweep(app: faust.App, worker: WorkerContext, settings: Settings, now: float) -> int:
    """Send every lead inactive since ``now - retention`` for erasure; returns how many."""
    ids = worker.ids()
    client = ids.client
    cutoff = now - settings.lead_retention_days * 86_400
    sent = 0
    while True:
        candidates = cast(
            list[bytes],
            await client.zrangebyscore(ids.seen_key, "-inf", cutoff, start=0, num=_ROUND),
        )
        if not candidates:
            return sent
        pipe = client.pipeline(transaction=False)
        for pseudonym in candidates:
            pipe.zrem(ids.seen_key, pseudonym)
        claimed = [p.decode() for p, won in zip(candidates, await pipe.execute()) if won]
        known = await ids.lead_ids(claimed)
        if known:
            receipt = new_receipt(
                len(known),
                requested_by="retention",
                reason=f"no event for {settings.lead_retention_days:g} days",
            )
            await ids.open_receipt(receipt, int(settings.erasure_receipt_days * 86_400))
            pseudonyms = {lead: pseudonym for pseudonym, lead in known.items()}
            for key, partition, value in erasure_requests(receipt, pseudonyms, settings):
                await app.producer.send(settings.erasures_topic, key, value, partition, None, None)
            sent += len(known)
        if len(candidates) < _ROUND:
            return sent
