"""API keys, the audit log and the latest-score cache against a real Redis."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

from leadscore.api.auth import KeyVerifier
from leadscore.api.cache import ScoreCache
from leadscore.infra.access import AccessError, AuditLog, KeyStore
from leadscore.infra.redis_store import ScoreStore

pytestmark = pytest.mark.integration


async def test_a_key_verifies_until_revoked_and_only_its_hash_is_stored(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    store = KeyStore(redis_client, name_prefix)
    key, record = await store.create("crm", ["score"])
    raw = await redis_client.hget(f"{name_prefix}apikeys", record.id)
    secret = key.split("_", 2)[2]  # lsk_<id>_<secret>; the secret itself may hold "_"
    assert key.encode() not in raw and secret.encode() not in raw
    assert (await store.verify(key)) == record
    assert await store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # wrong secret
    assert await store.verify("lsk_" + "0" * 12 + "_x") is None
    assert await store.verify("not-a-key") is None
    revoked = await store.revoke(record.id)
    assert revoked.revoked_at is not None and await store.verify(key) is None
    assert [k.id for k in await store.list()] == [record.id]
    with pytest.raises(AccessError, match="no API key"):
        await store.revoke("nope")
    with pytest.raises(AccessError, match="scopes must be"):
        await store.create("x", ["root"])


async def test_a_revoked_key_stops_working_once_the_cache_expires(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    store = KeyStore(redis_client, name_prefix)
    key, record = await store.create("dash", ["read"])
    verifier = KeyVerifier(store, cache_s=0.3)
    assert await verifier.verify(key) == record
    await store.revoke(record.id)
    assert await verifier.verify(key) == record  # cached: the documented grace
    await asyncio.sleep(0.35)
    assert await verifier.verify(key) is None


async def test_the_audit_log_pages_newest_first(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    audit = AuditLog(redis_client, name_prefix, max_entries=1000)
    for i in range(5):
        await audit.write(
            {
                "key_id": "k",
                "key_name": "n",
                "method": "POST",
                "path": f"/p{i}",
                "status": 200,
                "outcome": "ok",
            }
        )
    first = await audit.read(limit=3)
    assert [e["path"] for e in first] == ["/p4", "/p3", "/p2"]
    rest = await audit.read(limit=3, before=first[-1]["id"])
    assert [e["path"] for e in rest] == ["/p1", "/p0"]
    assert await audit.read(before="0-0") == []
    with pytest.raises(AccessError):
        await audit.read(before="99999999999999999999999-0")


async def test_the_score_cache_serves_a_score_event_before_redis_has_it(
    redis_client: aioredis.Redis, name_prefix: str
) -> None:
    store = ScoreStore(redis_client, name_prefix)
    await redis_client.set(store.score_key("a"), orjson.dumps({"lead_id": "a", "score": 10}))
    cache = ScoreCache(store, ttl_s=60)
    assert (await cache.latest("a"))["score"] == 10
    await redis_client.set(store.score_key("a"), orjson.dumps({"lead_id": "a", "score": 20}))
    assert (await cache.latest("a"))["score"] == 10  # within the TTL, no event: cached
    cache.on_score({"lead_id": "a", "score": 30})  # the event arrived before the Redis write
    assert (await cache.latest("a"))["score"] == 30
    cache.on_score({"lead_id": "b", "score": 5})  # an uncached lead is not added
    assert len(cache) == 1 and await cache.latest("b") is None
    no_cache = ScoreCache(store, ttl_s=0)
    assert (await no_cache.latest("a"))["score"] == 20 and len(no_cache) == 0
