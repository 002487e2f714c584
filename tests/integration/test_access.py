"""API keys, the audit log and the latest-score cache against a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from api_harness import drop_redis_keys, make_keys
from fastapi.testclient import TestClient

from leadscore.api.app import create_app
from leadscore.api.auth import KeyVerifier
from leadscore.api.cache import ScoreCache
from leadscore.infra.access import AccessError, AuditLog, KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.redis_store import ScoreStore
from leadscore.settings import Settings

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


def test_the_audit_log_keeps_route_templates_keys_and_only_refused_callers_networks(
    redis_url: str, name_prefix: str, tmp_path: Path
) -> None:
    """Through the API: what an audit entry says of the caller and of the lead it asked about."""
    settings = Settings(
        redis_url=redis_url, redis_prefix=name_prefix, model_dir=tmp_path / "models",
        api_jobs_dir=tmp_path / "jobs", kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )  # fmt: skip
    keys = make_keys(settings, ("read", "privacy", "admin"))
    jane = "jane.doe@example.com"
    calls = [  # (client address, key scope or None, path)
        (("203.0.113.77", 50000), None, f"/v1/leads/{jane}/export"),
        (("2001:db8:1:2::5", 50000), "", f"/v1/leads/{jane}/export"),  # an unknown key
        (("::ffff:198.51.100.9", 50000), None, f"/v1/erasures/er_{jane}"),
        (("192.0.2.10", 50000), "read", f"/v1/leads/{jane}/export"),
        (("192.0.2.11", 50000), "privacy", f"/v1/leads/{jane}/export"),
    ]
    try:
        app = create_app(settings, follow_models=False)
        for client, scope, path in calls:
            headers = {} if scope is None else {"X-API-Key": keys.get(scope, "lsk_000000000000_x")}
            with TestClient(app, client=client, raise_server_exceptions=False) as http:
                http.get(path, headers=headers)
        with TestClient(app) as http:
            audit = http.get(
                "/v1/audit", params={"limit": 10}, headers={"X-API-Key": keys["admin"]}
            )
        entries = [
            (e["status"], e["key_name"], e["path"], e["client"]) for e in reversed(audit.json())
        ]
        assert entries == [
            (401, None, "/v1/leads/{lead_id}/export", "203.0.113.0/24"),
            (401, None, "/v1/leads/{lead_id}/export", "2001:db8:1::/48"),
            (401, None, "/v1/erasures/{erasure_id}", "198.51.100.0/24"),
            (403, "test-read", "/v1/leads/{lead_id}/export", None),
            (404, "test-privacy", "/v1/leads/{lead_id}/export", None),
        ]
        assert "jane" not in str(audit.json()) and "192.0.2" not in str(audit.json())
    finally:
        drop_redis_keys(settings)
