"""Data keys against the real Redis: states and activity sealed at rest, rotation by reseal,
dead letters that open while their key lives and not after."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis

from leadscore.infra.privacy.crypto import Keyring, key_id_of
from leadscore.infra.privacy.dead_letters import DeadLetterKeys
from leadscore.infra.privacy.reseal import reseal
from leadscore.infra.redis_store import ScoreStore
from leadscore.infra.webhooks.forget import forget_leads
from leadscore.infra.webhooks.queue import erased_deliveries
from leadscore.infra.webhooks.store import WebhookStore
from leadscore.schemas.privacy import LeadErased
from leadscore.schemas.scores import DeadLetter
from leadscore.schemas.webhooks import WebhookSubscription

K1 = ("k1", b"\x01" * 32)
K2 = ("k2", b"\x02" * 32)


async def test_states_and_activity_are_sealed_and_a_reseal_moves_them_to_the_new_key(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    state = orjson.dumps({"profile": {"title_level": "vp"}, "counts": {"lead.page_viewed": 3}})
    entry = orjson.dumps({"id": "e1", "type": "lead.page_viewed", "data": {"url": "/pricing"}})
    old = ScoreStore(redis_client, name_prefix, keyring=Keyring([K1]))
    await old.write_batch([], [], {}, {"jane": state}, {"jane": [entry]})
    raw = await redis_client.get(f"{name_prefix}state:jane")
    assert key_id_of(raw) == "k1" and b"title_level" not in raw
    assert await old.state("jane") == orjson.loads(state)

    rotated = Keyring([K2, K1])
    new = ScoreStore(redis_client, name_prefix, keyring=rotated)
    assert await new.state("jane") == orjson.loads(state), "the old key still opens"
    report = await reseal(redis_client, name_prefix, rotated)
    assert report.resealed == {"k1": 2} and not report.old_keys_left
    assert key_id_of(await redis_client.get(f"{name_prefix}state:jane")) == "k2"
    only_k2 = ScoreStore(redis_client, name_prefix, keyring=Keyring([K2]))
    assert await only_k2.state("jane") == orjson.loads(state), "k1 can go"
    assert (await only_k2.activity("jane"))[0]["data"]["url"] == "/pricing"


async def test_a_dead_letter_opens_while_its_key_lives_and_never_after(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    raw = b'{"subject": "jane@example.com", "oops'
    letter = DeadLetter(
        reason_code="json", reason="not JSON", topic="t", partition=0, offset=7,
        key_b64=base64.b64encode(b"jane@example.com").decode(),
        value_b64=base64.b64encode(raw).decode(), received_at=datetime.now(UTC),
    )  # fmt: skip
    keys = DeadLetterKeys(redis_client, name_prefix, 60)
    (closed,) = await keys.seal([("p_0123", letter)])
    assert b"jane" not in closed.model_dump_json().encode() and closed.sealed == "dlkey:p_0123"
    assert 0 < await redis_client.ttl(f"{name_prefix}dlkey:p_0123") <= 60
    assert closed.reason != "not JSON" and closed.reason_code == "json"
    (opened,) = await keys.open([closed])
    assert opened is not None and base64.b64decode(opened.value_b64 or "") == raw
    assert opened.reason == "not JSON"
    await redis_client.delete(f"{name_prefix}dlkey:p_0123")  # erased, or expired
    assert await keys.open([closed]) == [None]


async def test_erasing_a_lead_finds_its_dead_webhooks_after_the_log_has_expired(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    """Dead deliveries are kept for replay; the lead's index of them must outlive the log."""
    store = WebhookStore(redis_client, name_prefix, log_ttl_s=60.0)
    now = datetime.now(UTC)
    sub = WebhookSubscription(
        id="wh_1", url="https://example.com/hook", secret="s" * 32, created_at=now, updated_at=now
    )
    await store.save_subscription(sub)
    (queued,) = erased_deliveries(
        LeadErased(id="le_1", lead_id="jane", erasure_id="er_1", erased_at=now), [sub], now
    )  # any delivery will do
    await store.enqueue([queued])
    index = store.lead_index_key("wh_1", "jane")
    await redis_client.pexpire(index, 50)  # as if the log's TTL were almost over
    dead = queued.record.model_copy(update={"status": "dead"})
    assert await store.finish("wh_1", "jane", dead)
    await asyncio.sleep(0.1)
    assert await redis_client.ttl(index) == -1, "a dead delivery's index does not expire"
    assert await forget_leads(store, ["jane"]) == 1
    assert await redis_client.get(store.record_key("wh_1", queued.record.id)) is None
    assert not await redis_client.zrange(store.dead_key("wh_1"), 0, -1)
