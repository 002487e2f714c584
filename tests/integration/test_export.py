"""Subject access end to end: ``leadscore api`` as a process, ``leadscore export`` as a command,
the real broker and Redis.

A lead whose id is an e-mail address gets what the worker would write (scores, history,
state, activity, its pseudonym's entries, a dead-letter key) through the stores' own
writers, and webhook deliveries to two subscriptions (pending, delivered, dead, and an old
dead one its lead index no longer names). Its export through the API and the CLI must hold
all of it and nothing of another lead; an unknown lead is a 404 / exit 2; keys without the
``privacy`` scope are refused; each export is audited without the lead id.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from api_harness import drop_redis_keys, make_keys, running_api
from worker_harness import create_topics, worker_env, worker_settings

from leadscore import __version__
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.privacy.crypto import Keyring
from leadscore.infra.privacy.dead_letters import DeadLetterKeys
from leadscore.infra.privacy.export import export_lead
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.infra.redis_store import ScoreStore, public_state
from leadscore.infra.webhooks.messages import envelope_body
from leadscore.infra.webhooks.store import QueuedDelivery, WebhookStore
from leadscore.schemas.scores import DeadLetter, LeadScored
from leadscore.schemas.webhooks import DeliveryAttempt, DeliveryRecord, WebhookSubscription
from leadscore.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

LEAD = "jane.doe@example.com"
OTHER = "other-lead-7"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HOOK_TOKEN = "t0ken-in-the-path-4f9a"
EXPORT_ROUTE = "/v1/leads/{lead_id}/export"


@dataclass
class Stack:
    settings: Settings
    url: str
    keys: dict[str, str]
    written: dict[str, Any]

    def client(self, scope: str | None = "privacy") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _score(lead_id: str, n: int, score: int) -> LeadScored:
    at = T0 + timedelta(hours=n)
    return LeadScored(
        id=f"sc_{lead_id}_{n}",
        lead_id=lead_id,
        score=score,
        probability=score / 100,
        grade="A" if score >= 80 else "C",
        model_version="rules-prior",
        base_score=20.0,
        reasons=[],
        cause_event_id=f"evt-{lead_id}-{n}",
        event_time=at,
        scored_at=at,
    )


def _record(sub: str, event: LeadScored) -> DeliveryRecord:
    return DeliveryRecord(
        id=f"d_{event.id}",
        subscription_id=sub,
        webhook_id=event.id,
        lead_id=event.lead_id,
        status="pending",
        created_at=event.scored_at,
        body=envelope_body(event).decode(),
    )


def _attempt(status_code: int | None) -> DeliveryAttempt:
    error = None if status_code == 200 else "connection refused"
    return DeliveryAttempt(
        number=1, started_at=T0, duration_ms=12.0, status_code=status_code, error=error
    )


async def _settle(
    store: WebhookStore, sub: str, record: DeliveryRecord, status: str
) -> DeliveryRecord:
    """Send the head of the pair's queue to ``status`` as the delivery worker would."""
    head_sub, head = await store.head(sub, record.lead_id)
    assert head_sub is not None and head is not None and head.id == record.id
    update: dict[str, Any] = {"status": status}
    if status == "delivered":
        update |= {"attempts": [_attempt(200)], "delivered_at": T0 + timedelta(days=1)}
    else:
        update |= {"attempts": [_attempt(None)], "dead_lettered_at": T0 + timedelta(days=1)}
    settled = record.model_copy(update=update)
    assert await store.finish(sub, record.lead_id, settled)
    return settled


async def _write(settings: Settings) -> dict[str, Any]:
    """What the worker and the webhook agent would have written about LEAD (and OTHER)."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keyring = Keyring.from_settings(settings)  # the worker seals states and activity
        store = ScoreStore(client, settings.redis_prefix, settings.history_length, keyring=keyring)
        first, latest, other = _score(LEAD, 1, 55), _score(LEAD, 2, 83), _score(OTHER, 1, 40)
        events = [first, latest, other]
        state = {"lead_id": LEAD, "page_views": 3, "title_level": "vp", "seen_ids": ["evt-1"]}
        activity = [
            orjson.dumps({"id": "evt-1", "type": "lead.page_viewed", "time": "2026-11-20T10:00:00Z",
                          "data": {"url": "/pricing"}}),
            orjson.dumps({"id": "evt-2", "type": "lead.demo_requested",
                          "time": "2026-11-20T11:00:00Z", "data": {}}),
        ]  # fmt: skip
        await store.write_batch(
            events,
            [orjson.dumps(e.model_dump(mode="json")) for e in events],
            {"scores": 3},
            states={LEAD: public_state(state), OTHER: public_state({"lead_id": OTHER})},
            activity={LEAD: activity, OTHER: [orjson.dumps({"id": "o-1", "type": "x"})]},
        )
        assert b"page_views" not in await client.get(store.state_key(LEAD))  # sealed
        refs = LeadRefs.from_settings(settings)
        ids = LeadIds(client, settings.redis_prefix, refs=refs)
        pipe = client.pipeline(transaction=False)
        ids.remember(pipe, {refs.table(LEAD): LEAD, refs.table(OTHER): OTHER})
        pipe.zadd(ids.seen_key, {refs.table(LEAD): (T0 + timedelta(hours=2)).timestamp()})
        await pipe.execute()
        letter = DeadLetter(
            reason_code="invalid_json", reason="not JSON", topic="t", partition=0, offset=1,
            key_b64=None, value_b64="e30=", received_at=T0,
        )  # fmt: skip
        await DeadLetterKeys(client, settings.redis_prefix, 86_400).seal(
            [(refs.table(LEAD), letter)]
        )

        hooks = WebhookStore(client, settings.redis_prefix, settings.webhook_log_ttl_s)
        subs = {}
        for name, url in (("wh_crm", f"https://crm.example.com/hooks/{HOOK_TOKEN}"),
                          ("wh_old", "https://archive.example.org/in")):  # fmt: skip
            subs[name] = WebhookSubscription(
                id=name, url=url, secret="whsec_" + "A" * 32, created_at=T0, updated_at=T0
            )
            await hooks.save_subscription(subs[name])
        crm = [_record("wh_crm", e) for e in (first, latest, _score(LEAD, 3, 90))]
        crm_other = _record("wh_crm", other)
        await hooks.enqueue([QueuedDelivery("wh_crm", r.lead_id, r) for r in [*crm, crm_other]])
        delivered = await _settle(hooks, "wh_crm", crm[0], "delivered")
        dead = await _settle(hooks, "wh_crm", crm[1], "dead")
        # wh_old: a dead delivery of LEAD whose lead index has expired (the index lives the
        # log's TTL; dead deliveries are kept until replayed), then a newer dead one of OTHER
        old = _record("wh_old", first)
        await hooks.enqueue([QueuedDelivery("wh_old", LEAD, old)])
        old_dead = await _settle(hooks, "wh_old", old, "dead")
        await client.delete(hooks.lead_index_key("wh_old", LEAD))
        newer = _record("wh_old", other)
        await hooks.enqueue([QueuedDelivery("wh_old", OTHER, newer)])
        await asyncio.sleep(0.01)  # a later dead-letter time than old's
        await _settle(hooks, "wh_old", newer, "dead")
        return {
            "history": [latest, first],
            "state": {k: v for k, v in state.items() if k != "seen_ids"},
            "activity": [orjson.loads(a) for a in reversed(activity)],
            "pending": [crm[2].id],
            "delivered": [delivered.id],
            "dead": sorted([dead.id, old_dead.id]),
        }
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("export")
    settings = worker_settings(
        f"t-export-{uuid.uuid4().hex[:8]}.",
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=root / "models",  # empty: the rules prior
        api_port=free_port(),
        api_jobs_dir=root / "jobs",
        topic_lead_ids="pseudonymous",
        lead_retention_days=400.0,
    )
    asyncio.run(create_topics(settings))
    try:
        written = asyncio.run(_write(settings))
        with running_api(settings, root / "api.log") as url:
            keys = make_keys(settings, ("read", "score", "privacy", "admin"))
            yield Stack(settings, url, keys, written)
    finally:
        drop_redis_keys(settings)


def _path(lead_id: str) -> str:
    return f"/v1/leads/{quote(lead_id, safe='')}/export"


def _check_document(doc: dict[str, Any], stack: Stack) -> None:
    written = stack.written
    assert doc["format"] == "leadscore.subject-access.v1"
    assert doc["lead_id"] == LEAD and doc["leadscore_version"] == __version__
    generated = datetime.fromisoformat(doc["generated_at"])
    assert abs((datetime.now(UTC) - generated).total_seconds()) < 120
    places = " ".join(e["place"] for e in doc["elsewhere"])
    settings = stack.settings
    for topic in (settings.scores_topic, settings.features_topic, settings.training_topic,
                  settings.dead_letter_topic, settings.webhook_dead_letter_topic):  # fmt: skip
        assert topic in places
    assert all(e["see"].startswith("docs/privacy.md#") for e in doc["elsewhere"])

    assert doc["pseudonym"] == LeadRefs.from_settings(settings).table(LEAD)
    assert doc["pseudonym_linked"] is True and doc["pseudonym_on_topics"] is True
    assert "HMAC-SHA256" in doc["pseudonym_means"]

    history = [LeadScored.model_validate(e) for e in doc["score_history"]]
    assert history == written["history"]
    assert LeadScored.model_validate(doc["latest_score"]) == written["history"][0]
    assert doc["leaderboard_points"] == pytest.approx(83.0)
    assert doc["state"] == written["state"]  # opened: it is sealed in Redis
    assert "lead_state" in doc["state_note"] and "recent events" in doc["state_note"]
    assert doc["activity"] == written["activity"]

    hooks = doc["webhook_deliveries"]
    for status in ("pending", "delivered", "dead"):
        assert sorted(d["id"] for d in hooks[status]) == sorted(written[status]), status
        for delivery in hooks[status]:
            assert delivery["lead_id"] == LEAD and delivery["status"] == status
            assert delivery["payload"]["data"]["lead_id"] == LEAD
            assert delivery["recipient"] in (
                "https://crm.example.com",
                "https://archive.example.org",
            )
    assert hooks["subscriptions"] == 2 and hooks["complete"] is True
    assert hooks["dead_scanned"] >= 1  # the old dead delivery came from the scan

    retention = doc["retention"]
    last_event = datetime.fromisoformat(retention["last_event_at"])
    assert last_event == T0 + timedelta(hours=2)
    assert datetime.fromisoformat(retention["forgotten_after"]) == last_event + timedelta(400)
    assert datetime.fromisoformat(retention["dead_letter_key_expires_at"]) > datetime.now(UTC)
    assert retention["erasure_in_progress"] is None

    text = orjson.dumps(doc).decode()
    assert OTHER not in text  # nothing of another lead
    assert HOOK_TOKEN not in text and "whsec_" not in text  # no receiver credentials


def test_the_api_exports_everything_held_about_the_lead(stack: Stack) -> None:
    with stack.client("privacy") as client:
        response = client.get(_path(LEAD))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    _check_document(response.json(), stack)


def test_an_admin_key_may_export_too(stack: Stack) -> None:
    with stack.client("admin") as client:
        response = client.get(_path(LEAD))
    assert response.status_code == 200, response.text


def test_an_unknown_lead_is_a_404_that_says_so(stack: Stack) -> None:
    with stack.client("privacy") as client:
        response = client.get(_path("nobody@example.com"))
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    error = response.json()["error"]
    assert error["code"] == "unknown_lead"
    assert "holds nothing about lead 'nobody@example.com'" in error["message"]


def test_keys_without_the_privacy_scope_are_refused(stack: Stack) -> None:
    for scope in ("read", "score"):
        with stack.client(scope) as client:
            response = client.get(_path(LEAD))
        assert response.status_code == 403, (scope, response.text)
        assert "needs 'privacy'" in response.json()["error"]["message"]
        assert LEAD not in response.text
    with stack.client(None) as anonymous:
        assert anonymous.get(_path(LEAD)).status_code == 401


def test_each_export_is_audited_by_its_route_never_its_lead(stack: Stack) -> None:
    with stack.client("read") as reader:
        assert reader.get(_path(LEAD)).status_code == 403
    with stack.client("privacy") as client:
        assert client.get(_path(LEAD)).status_code == 200
        assert client.get(_path("nobody@example.com")).status_code == 404
    with stack.client("admin") as admin:
        entries = admin.get("/v1/audit", params={"limit": 200}).json()
    exports = [e for e in entries if e["path"] == EXPORT_ROUTE]
    outcomes = {(e["key_name"], e["status"]) for e in exports}
    assert {("test-read", 403), ("test-privacy", 200), ("test-privacy", 404)} <= outcomes
    denied = next(e for e in exports if e["status"] == 403)
    assert denied["outcome"].startswith("denied") and denied["method"] == "GET"

    async def raw_audit() -> bytes:
        client = aioredis.Redis.from_url(stack.settings.redis_url)
        try:
            rows = await client.xrange(f"{stack.settings.redis_prefix}audit")
            return b"".join(fields[b"entry"] for _, fields in rows)
        finally:
            await client.aclose()

    raw = asyncio.run(raw_audit())
    assert EXPORT_ROUTE.encode() in raw
    for name in (LEAD, quote(LEAD, safe=""), "nobody@example.com", "nobody%40example.com"):
        assert name.encode() not in raw, name


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadscore", "export", *args],
        env=worker_env(stack.settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_writes_the_same_document_to_a_private_file(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "jane.json"
    out.write_text("an older export")
    out.chmod(0o644)
    done = _cli(stack, LEAD, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and str(out) in done.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    from_cli = orjson.loads(out.read_bytes())
    _check_document(from_cli, stack)
    with stack.client("privacy") as client:
        from_api = client.get(_path(LEAD)).json()
    for doc in (from_cli, from_api):
        del doc["generated_at"]
        doc["retention"].pop("dead_letter_key_expires_at")  # a TTL read at another moment
    assert from_cli == from_api

    printed = _cli(stack, LEAD)
    assert printed.returncode == 0, printed.stderr
    assert orjson.loads(printed.stdout)["lead_id"] == LEAD

    with stack.client("admin") as admin:
        entries = admin.get("/v1/audit", params={"limit": 50}).json()
    cli = [e for e in entries if e["path"] == "leadscore export"]
    assert len(cli) >= 2 and all(e["key_name"] == "cli" and e["status"] == 200 for e in cli)
    assert LEAD not in orjson.dumps(entries).decode()


def test_the_cli_says_an_unknown_lead_on_stderr_and_fails(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "nobody.json"
    done = _cli(stack, "nobody@example.com", "--output", str(out))
    assert done.returncode == 2
    assert done.stdout == "" and not out.exists()
    assert "holds nothing about lead 'nobody@example.com'" in done.stderr


def test_the_dead_letter_scan_is_bounded_and_says_when_it_was_cut(stack: Stack) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(stack.settings.redis_url)
        try:
            # wh_old holds two dead deliveries; the newer is OTHER's: one read finds not LEAD's
            cut = await export_lead(stack.settings, client, LEAD, scan_limit=1)
            whole = await export_lead(stack.settings, client, LEAD, scan_limit=2)
            assert cut is not None and whole is not None
            hooks = cut.webhook_deliveries
            assert hooks.complete is False
            assert "d_sc_jane.doe@example.com_1" not in {
                d["id"] for d in hooks.dead if d["subscription_id"] == "wh_old"
            }
            assert whole.webhook_deliveries.complete is True
            assert len(whole.webhook_deliveries.dead) == 2
            assert await export_lead(stack.settings, client, "nobody@example.com") is None
            with pytest.raises(ValueError, match="scan_limit"):
                await export_lead(stack.settings, client, LEAD, scan_limit=0)
        finally:
            await client.aclose()

    asyncio.run(run())
