"""Erasing a lead from the webhook store: its queues, delivery records, log and dead entries."""

from __future__ import annotations

from collections.abc import Sequence

from leadscore.infra.webhooks.store import WebhookStore
from leadscore.infra.webhooks.store_scripts import FORGET_LEAD


async def forget_leads(store: WebhookStore, lead_ids: Sequence[str]) -> int:
    """Delete every delivery of these leads for every subscription (one round trip);
    returns how many.

    Deliveries queued after this call (a score event read later) are not touched: the
    caller erases the lead from the topic's side first (docs/privacy.md).
    """
    subscription_ids = list((await store.raw_subscriptions()).keys())
    if not subscription_ids:
        return 0
    script = store.client.register_script(FORGET_LEAD)
    pipe = store.client.pipeline(transaction=False)
    for sub in subscription_ids:
        for lead_id in lead_ids:
            await script(
                keys=[
                    store.queue_key(sub, lead_id),
                    store.due_key,
                    store.log_key(sub),
                    store.dead_key(sub),
                    store.lead_index_key(sub, lead_id),
                ],
                args=[store.member(sub, lead_id), store.record_key(sub, "")],
                client=pipe,
            )
    return sum(int(n) for n in await pipe.execute())


def is_erasure_notice(webhook_id: str) -> bool:
    """Whether a delivery carries a ``lead.erased`` event (see leadscore.streams.erasure)."""
    return webhook_id.startswith("le_")


async def forget_delivery(
    store: WebhookStore, subscription_id: str, lead_id: str, delivery_id: str
) -> None:
    """Delete one settled delivery: its record, its log entry and its place in the lead's index.

    A delivered ``lead.erased`` goes at once: it is the last thing that named the lead.
    """
    index = store.lead_index_key(subscription_id, lead_id)
    pipe = store.client.pipeline(transaction=True)
    pipe.delete(store.record_key(subscription_id, delivery_id))
    pipe.zrem(store.log_key(subscription_id), delivery_id)
    pipe.srem(index, delivery_id)
    await pipe.execute()
    if not await store.client.scard(index):
        await store.client.delete(index)
