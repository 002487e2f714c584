"""Subject access: everything leadscore holds about one lead, as one JSON document.

``GET /v1/leads/{lead_id}/export`` and ``leadscore export LEAD_ID`` both answer
:func:`export_lead`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
import redis.asyncio as aioredis

from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.settings import Settings

#: Where else leadscore may hold data about a lead, said in every export.
ELSEWHERE = [
    "The worker's state table (changelog topic <app_id>-lead_state-changelog) holds the same "
    "state as 'state' below, plus the ids of the lead's recent events, under the pseudonym.",
    "Kafka topics leadscore writes (scores, features, training examples, dead letters) name "
    "the lead by its pseudonym; their records are kept for each topic's retention.",
    "Dead letters of the lead (records that could not be used) are sealed; "
    "`leadscore dead-letters` reads them while their key lives.",
    "Trained models hold no lead ids; the training topic holds the lead's first outcome "
    "with its feature vector, under the pseudonym.",
    "See docs/privacy.md.",
]


def _version() -> str:
    try:
        return version("leadscore")
    except PackageNotFoundError:  # a source tree that was not installed
        return "unknown"


async def export_lead(
    settings: Settings, client: aioredis.Redis, lead_id: str
) -> dict[str, Any] | None:
    """Everything leadscore holds about ``lead_id`` (``None`` if it holds nothing)."""
    store = ScoreStore(
        client, settings.redis_prefix, settings.history_length,
        activity_length=settings.activity_length, keyring=Keyring.from_settings(settings),
    )  # fmt: skip
    score = await store.latest(lead_id)
    history = await store.history(lead_id, max(1, settings.history_length))
    state = await store.state(lead_id)
    activity = await store.activity(lead_id, max(1, settings.activity_length))
    deliveries = await _deliveries(WebhookStore(client, settings.redis_prefix), lead_id)
    if score is None and not history and state is None and not activity and not deliveries:
        return None
    return {
        "lead_id": lead_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "leadscore_version": _version(),
        "pseudonym": LeadRefs.from_settings(settings).table(lead_id),
        "pseudonym_means": "what leadscore's Kafka topics and tables call this lead (an HMAC "
        "of its id with this deployment's secret)",
        "latest_score": score,
        "score_history": history,
        "state": state,
        "activity": activity,
        "webhook_deliveries": deliveries,
        "elsewhere": ELSEWHERE,
    }


async def _deliveries(store: WebhookStore, lead_id: str) -> list[dict[str, Any]]:
    """The lead's webhook deliveries (queued, delivered and in the log, dead), oldest first."""
    out: list[dict[str, Any]] = []
    for sub in await store.raw_subscriptions():
        ids = {
            _text(i) for i in await store.client.smembers(store.lead_index_key(sub, lead_id))
        } | {_text(i) for i in await store.client.lrange(store.queue_key(sub, lead_id), 0, -1)}
        if not ids:
            continue
        rows = await store.client.mget([store.record_key(sub, i) for i in sorted(ids)])
        out += [orjson.loads(row) for row in rows if row is not None]
    return sorted(out, key=lambda r: str(r.get("created_at")))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
