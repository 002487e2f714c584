"""Erasing leads: the request (``leadscore erase``, ``DELETE /v1/leads/{id}``) and its wait.

:func:`request_erasure` checks every lead is known (an unknown one fails the whole
request and touches nothing), opens a receipt, makes sure Redis can turn each lead's
pseudonym back into its id, and writes one request per lead to the erasures topic, on the
partition of the lead's events, keyed by its pseudonym: the worker that holds the lead
does the rest (``leadscore.streams.erasure``). :func:`wait_for_erasure` waits until
the receipt says every lead is erased and its ``lead.erased`` queued for webhook
receivers, then until no API process can still serve a cached copy.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from leadscore.infra.kafka.client import client_options
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.redis_store import ScoreStore
from leadscore.models.batch.records import home_partition
from leadscore.schemas.privacy import ErasureReceipt, ErasureRequested
from leadscore.settings import Settings

#: Leads checked per Redis round trip, and written per producer flush.
_CHUNK = 1000
#: Longest reason kept on a receipt.
MAX_REASON_CHARS = 500


class UnknownLeadsError(LookupError):
    """Some leads of an erasure request are not known: nothing was erased."""

    def __init__(self, lead_ids: Sequence[str]) -> None:
        self.lead_ids = list(lead_ids)
        shown = ", ".join(repr(lead) for lead in self.lead_ids[:5])
        more = f" and {len(self.lead_ids) - 5} more" if len(self.lead_ids) > 5 else ""
        super().__init__(
            f"no lead {shown}{more} is known to leadscore (no score, state or activity); "
            "nothing was erased"
        )


def lead_ids_of(settings: Settings, client: aioredis.Redis) -> LeadIds:
    refs = LeadRefs.from_settings(settings)
    return LeadIds(client, settings.redis_prefix, plain_topics=refs.plain_topics, refs=refs)


async def unknown_leads(
    settings: Settings, client: aioredis.Redis, lead_ids: Sequence[str]
) -> list[str]:
    """The leads of ``lead_ids`` leadscore holds nothing about (in Redis)."""
    ids = lead_ids_of(settings, client)
    store = ScoreStore(client, settings.redis_prefix)
    unknown: list[str] = []
    for start in range(0, len(lead_ids), _CHUNK):
        chunk = lead_ids[start : start + _CHUNK]
        assert ids.refs is not None
        pseudonyms = [ids.refs.table(lead) for lead in chunk]
        mapped = await ids.lead_ids(pseudonyms)
        pipe = client.pipeline(transaction=False)
        for lead in chunk:
            pipe.exists(
                store.score_key(lead),
                store.state_key(lead),
                store.activity_key(lead),
                store.history_key(lead),
            )
        found = await pipe.execute()
        unknown += [
            lead
            for lead, pseudonym, n in zip(chunk, pseudonyms, found, strict=True)
            if pseudonym not in mapped and not n
        ]
    return unknown


async def request_erasure(
    settings: Settings,
    client: aioredis.Redis,
    lead_ids: Sequence[str],
    *,
    requested_by: str,
    reason: str | None = None,
) -> ErasureReceipt:
    """Ask the worker(s) to erase ``lead_ids``; returns the (pending) receipt.

    Raises:
        UnknownLeadsError: a lead is not known; nothing was requested.
        ValueError: no lead ids, or an empty one.
    """
    leads = list(dict.fromkeys(lead_ids))
    if not leads or any(not lead for lead in leads):
        raise ValueError("give at least one lead id, none empty")
    unknown = await unknown_leads(settings, client, leads)
    if unknown:
        raise UnknownLeadsError(unknown)
    ids = lead_ids_of(settings, client)
    assert ids.refs is not None
    receipt = new_receipt(len(leads), requested_by=requested_by, reason=reason)
    await ids.open_receipt(receipt, int(settings.erasure_receipt_days * 86_400))
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for start in range(0, len(leads), _CHUNK):
            chunk = {lead: ids.refs.table(lead) for lead in leads[start : start + _CHUNK]}
            # The worker finds each lead's id here (a lead may predate the pseudonym map).
            await client.hset(ids.ids_key, mapping={p: lead for lead, p in chunk.items()})
            sends = [
                await producer.send(settings.erasures_topic, value, key=key, partition=partition)
                for key, partition, value in erasure_requests(receipt, chunk, settings)
            ]
            await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return receipt


def erasure_requests(
    receipt: ErasureReceipt, pseudonyms: Mapping[str, str], settings: Settings
) -> list[tuple[bytes, int, bytes]]:
    """(key, partition, value) of the erasures-topic record of each lead (lead id ->
    pseudonym): keyed by the pseudonym, on the partition of the lead's events."""
    return [
        (
            pseudonym.encode(),
            home_partition(lead.encode(), settings.topic_partitions),
            orjson.dumps(
                ErasureRequested(
                    erasure_id=receipt.id, pseudonym=pseudonym, requested_at=receipt.requested_at
                ).model_dump(mode="json")
            ),
        )
        for lead, pseudonym in pseudonyms.items()
    ]


def new_receipt(
    leads: int, *, requested_by: str, reason: str | None, now: datetime | None = None
) -> ErasureReceipt:
    return ErasureReceipt(
        id="er_" + secrets.token_hex(8),
        status="pending",
        requested_at=now or datetime.now(UTC),
        requested_by=requested_by,
        reason=(reason or None) and reason[:MAX_REASON_CHARS],
        leads=leads,
    )


async def wait_for_erasure(
    settings: Settings, client: aioredis.Redis, erasure_id: str, *, timeout_s: float
) -> ErasureReceipt:
    """Wait until the erasure is complete; returns the receipt as it then stands.

    Complete: every lead erased by the worker and its ``lead.erased`` queued for the
    webhook receivers, and then the API's score cache lifetime passed (no process can
    still serve a copy). Returns the pending receipt if ``timeout_s`` runs out first.
    """
    ids = lead_ids_of(settings, client)
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = await ids.receipt(erasure_id)
        if receipt is None:
            raise LookupError(f"no erasure {erasure_id!r}")
        if receipt.completed_at is not None:
            cached_until = receipt.completed_at.timestamp() + settings.api_cache_ttl_s
            wait = cached_until - time.time()
            if wait > 0:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            return receipt
        if time.monotonic() >= deadline:
            return receipt
        await asyncio.sleep(0.1)
