"""Erasure end to end: ``leadscore worker`` + ``leadscore api`` processes, the real broker and
Redis, a real webhook receiver and the API's live feed, with the default settings for
personal data (pseudonyms on leadscore's topics).

A lead whose id is an e-mail address gets activity, a profile with a job title, a dead
letter and webhooks; it is erased with ``leadscore erase``; then every Redis key and value
and every record of every topic leadscore writes is searched for its id and its values.
Another lead is erased through ``DELETE /v1/leads/{id}``; a third is left alone and must
be unchanged. A replay of the erased lead's old events must not bring it back.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from api_harness import Stack as ApiStack
from api_harness import drop_redis_keys, make_keys, running_api
from webhook_receiver import Receiver
from websockets.asyncio.client import connect as ws_connect
from worker_harness import (
    WorkerProcess,
    create_topics,
    read_to_end,
    send_records,
    wait_all_committed,
    worker_env,
    worker_settings,
)

from leadscore.api.websocket.feed import ScoreFeed
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.infra.privacy.lead_ids import LeadIds
from leadscore.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JOB_TITLE = "Head of Growth, Acme Secret Projects"
SECRET_PAGE = "/pricing?email=jane.doe%40example.com&name=Jane"


@dataclass
class Stack(ApiStack):
    receiver: Receiver


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("privacy")
    prefix = f"t-privacy-{uuid.uuid4().hex[:8]}."
    settings = worker_settings(
        prefix,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=root / "models",  # empty: the rules prior scores
        api_port=free_port(),
        api_jobs_dir=root / "jobs",
        api_cache_ttl_s=1.0,
        webhook_dead_letter_topic=f"{prefix}webhooks.dead-letter.v1",
        webhook_allowed_networks="127.0.0.0/8,::1/128",
        webhook_timeout_s=2.0,
        topic_lead_ids="pseudonymous",  # the default (the harness writes plain ids)
        lead_retention_days=1.0,  # the other tests' leads are active (events 2 h ago)
        retention_sweep_s=1.0,
    )
    asyncio.run(create_topics(settings))
    receiver = Receiver()
    receiver.start()
    worker = WorkerProcess(settings, root / "worker.log")
    api_log = root / "api.log"
    try:
        with running_api(settings, api_log, loglevel="info", ready_timeout_s=150) as url:
            asyncio.run(worker.wait_ready())
            keys = make_keys(settings, ("read", "privacy", "admin"))
            created = httpx.post(
                f"{url}/v1/webhooks",
                json={"url": receiver.url},  # every lead's webhooks
                headers={"Authorization": f"Bearer {keys['admin']}"},
                timeout=30,
            )
            assert created.status_code == 201, created.text
            yield Stack(settings, url, keys, worker, api_log, receiver)
    finally:
        worker.stop()
        receiver.stop()
        drop_redis_keys(settings)


def _events(lead: str, tag: str, start: datetime) -> list[tuple[str, dict[str, Any]]]:
    """(topic kind, event): a profile with personal values, page views, a download."""

    def event(i: int, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": f"{tag}-{i}",
            "source": "privacy-test",
            "type": type_,
            "time": (start + timedelta(seconds=i)).isoformat(),
            "subject": lead,
            "data": data,
        }

    title, page = (JOB_TITLE, SECRET_PAGE) if lead.startswith("jane") else ("Engineer", "/pricing")
    return [
        ("profile", event(0, "lead.profile_updated", {"job_title": title, "company_size": 80})),
        ("activity", event(1, "lead.page_viewed", {"url": page, "duration_s": 40})),
        ("activity", event(2, "lead.page_viewed", {"url": "/demo", "duration_s": 60})),
        ("activity", event(3, "lead.content_downloaded", {"asset": "roi-guide.pdf"})),
    ]


async def _publish(stack: Stack, lead: str, tag: str, start: datetime) -> None:
    s = stack.settings
    topic = {"profile": s.profile_topic, "activity": s.activity_topic}
    records = [
        (topic[kind], lead.encode(), orjson.dumps(event))
        for kind, event in _events(lead, tag, start)
    ]
    # and one malformed record of the lead: a dead letter with its raw bytes
    records.append(
        (s.activity_topic, lead.encode(), b'{"subject": "' + lead.encode() + b'", "oops')
    )
    await send_records(s.kafka_bootstrap, records)


async def _wait(what: str, probe: Any, stack: Stack, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        stack.worker.check_alive()
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s\n{stack.describe()}", pytrace=False)
        await asyncio.sleep(0.2)


async def _redis_dump(client: aioredis.Redis, prefix: str) -> dict[str, bytes]:
    """Every key under ``prefix`` with its whole content as bytes (any type)."""
    out: dict[str, bytes] = {}
    async for raw in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode()
        kind = (await client.type(key)).decode()
        if kind == "string":
            value: Any = await client.get(key)
        elif kind == "hash":
            value = await client.hgetall(key)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "set":
            value = await client.smembers(key)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await client.xrange(key)
        else:
            value = b""
        out[key] = repr(value).encode()
    return out


async def _topics_of(settings: Settings) -> list[tuple[str, int]]:
    """Every topic leadscore writes for this stack (its own, and the worker's changelogs),
    with its partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        producers_own = set(settings.input_topics)  # the producers' topics (docs/privacy.md)
        names = [
            name
            for name in await admin.list_topics()
            if (name.startswith(settings.redis_prefix) or name.startswith(settings.app_id))
            and name not in producers_own
        ]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return sorted((d["topic"], len(d["partitions"])) for d in described)


def _found(needles: list[bytes], haystack: bytes) -> list[bytes]:
    low = haystack.lower()
    return [n for n in needles if n.lower() in low]


@pytest.fixture
async def feed(stack: Stack) -> AsyncIterator[list[dict[str, Any]]]:
    """What the API's live feed hands its listeners (as in every API process)."""
    s = stack.settings
    client = aioredis.Redis.from_url(s.redis_url)
    refs = LeadRefs.from_settings(s)
    score_feed = ScoreFeed(
        s, LeadIds(client, s.redis_prefix, plain_topics=False, cache_size=1000, refs=refs)
    )
    seen: list[dict[str, Any]] = []
    score_feed.add_listener(seen.append)
    await score_feed.start()
    try:
        await asyncio.wait_for(score_feed.positioned.wait(), 60)
        yield seen
    finally:
        await score_feed.stop()
        await client.aclose()


async def test_an_erased_lead_leaves_nothing_readable_and_stays_erased(
    stack: Stack, feed: list[dict[str, Any]]
) -> None:
    s = stack.settings
    tag = uuid.uuid4().hex[:6]
    jane = f"jane.doe+{tag}@example.com"
    bob, carol = f"bob-{tag}", f"carol-{tag}"
    start = datetime.now(UTC) - timedelta(hours=2)
    for lead in (jane, bob, carol):
        await _publish(stack, lead, f"{tag}-{uuid.uuid5(uuid.NAMESPACE_URL, lead).hex[:8]}", start)
    client = aioredis.Redis.from_url(s.redis_url)
    try:

        async def all_scored() -> bool:
            keys = [f"{s.redis_prefix}score:{lead}" for lead in (jane, bob, carol)]
            return all(await client.mget(keys))

        await _wait("scores of the three leads", all_scored, stack)
        await wait_all_committed(s, timeout_s=90)

        def delivered(lead: str) -> bool:
            return any(
                r.payload().get("data", {}).get("lead_id") == lead
                for r in stack.receiver.requests()
            )

        await _wait("webhooks of jane", lambda: asyncio.sleep(0, delivered(jane)), stack)
        assert any(e.get("lead_id") == jane for e in feed), (
            "the feed shows lead ids, not pseudonyms"
        )
        bob_before = await client.get(f"{s.redis_prefix}score:{bob}")

        # --- subject access: what is held about jane, minimised -----------------------------
        async with stack.api("privacy") as api:
            got = await api.get(f"/v1/leads/{jane}/export")
            assert got.status_code == 200, got.text
            assert got.headers["cache-control"] == "no-store"
            document = got.json()
        assert document["lead_id"] == jane and document["latest_score"]["lead_id"] == jane
        assert document["state"]["profile"].get("title_level"), document["state"]["profile"]
        assert "job_title" not in document["state"]["profile"]
        assert not any("job_title" in e["data"] for e in document["activity"]), document
        urls = [e["data"].get("url") for e in document["activity"] if "url" in e["data"]]
        assert "/pricing" in urls and not any("?" in u for u in urls), urls
        deliveries = document["webhook_deliveries"]
        assert any(deliveries[k] for k in ("pending", "delivered", "dead")), deliveries
        assert document["pseudonym"].startswith("p_")
        async with stack.api("read") as api:
            assert (await api.get(f"/v1/leads/{jane}/export")).status_code == 403
        async with stack.api("admin") as api:
            audit = (await api.get("/v1/audit", params={"limit": 50})).json()
        exports = [e for e in audit if e["path"].endswith("/export")]
        assert exports and all(e["path"] == "/v1/leads/{lead_id}/export" for e in exports), exports
        assert all(e["client"] is None for e in exports if e["key_id"])
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "leadscore", "export", jane],
            env=worker_env(s), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert orjson.loads(cli.stdout)["state"] == document["state"]
        pseudonym = LeadRefs.from_settings(s).table(jane)

        # a dashboard's WebSocket, watching jane
        ws_url = stack.api_url.replace("http", "ws") + "/v1/stream"
        query = urlencode({"api_key": stack.keys["read"], "leads": jane})
        ws = await ws_connect(f"{ws_url}?{query}")
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "hello"

        # --- erase jane with the CLI ---------------------------------------------------------
        started = time.monotonic()
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "leadscore", "erase", jane, "--reason", "subject request"],
            env=worker_env(s), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        erase_s = time.monotonic() - started
        assert cli.returncode == 0, cli.stderr + "\n" + stack.describe()
        receipt = orjson.loads(cli.stdout)
        assert receipt["status"] == "done" and receipt["erased"] == 1 and receipt["notified"] == 1
        assert receipt["removed"].get("score") == 1 and receipt["requested_by"] == "cli"
        assert jane.encode() not in cli.stdout.encode(), "the receipt holds no lead id"
        print(f"erasure of one lead via the CLI: {erase_s:.2f} s")

        # the API forgets her; bob is unchanged
        async with stack.api("privacy") as api:
            assert (await api.get(f"/v1/leads/{jane}/export")).status_code == 404
        async with stack.api("read") as api:
            for path in ("score", "history", "activity"):
                got = await api.get(f"/v1/leads/{jane}/{path}")
                assert got.status_code == 404, (path, got.status_code, got.text)
            assert (await api.get(f"/v1/leads/{bob}/score")).status_code == 200
        assert await client.get(f"{s.redis_prefix}score:{bob}") == bob_before

        # downstream was told: the webhook receiver and the live feed got lead.erased
        await _wait(
            "lead.erased at the receiver",
            lambda: asyncio.sleep(
                0, any(r.payload().get("type") == "lead.erased" for r in stack.receiver.requests())
            ),
            stack,
        )
        erased_hooks = [
            r.payload()
            for r in stack.receiver.requests()
            if r.payload().get("type") == "lead.erased"
        ]
        assert erased_hooks[0]["data"]["lead_id"] == jane
        assert erased_hooks[0]["data"]["erasure_id"] == receipt["id"]
        await _wait(
            "lead.erased on the feed",
            lambda: asyncio.sleep(0, any(e.get("type") == "lead.erased" for e in feed)),
            stack,
        )
        assert [e["lead_id"] for e in feed if e.get("type") == "lead.erased"] == [jane]
        got: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(30):
                while (message := orjson.loads(await ws.recv()))["type"] != "erased":
                    got.append(message)
        except TimeoutError:
            pytest.fail(f"no 'erased' message on the WebSocket; got {got}\n{stack.describe()}")
        finally:
            await ws.close()
        assert message["data"]["lead_id"] == jane and message["data"]["type"] == "lead.erased"

        # --- nothing readable is left --------------------------------------------------------
        needles = [jane.encode(), b"jane.doe", JOB_TITLE.encode(), b"Acme Secret", b"email="]

        async def left_in_redis() -> dict[str, list[bytes]]:
            dump = await _redis_dump(client, s.redis_prefix)
            found = {
                k: _found([*needles, pseudonym.encode()], k.encode() + v) for k, v in dump.items()
            }
            return {k: v for k, v in found.items() if v}

        # the delivered lead.erased webhook is the last thing naming her; it goes once delivered
        deadline = time.monotonic() + 10
        while (in_redis := await left_in_redis()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        assert not in_redis, in_redis
        for topic, partitions in await _topics_of(s):
            records = await read_to_end(s.kafka_bootstrap, [topic], partitions)
            for record in records:
                raw = (record.key or b"") + b"\x00" + (record.value or b"")
                assert not _found(needles, raw), (topic, record.offset, raw[:300])
        changelog = await read_to_end(
            s.kafka_bootstrap, [f"{s.app_id}-lead_state-changelog"], s.topic_partitions
        )
        last = [r for r in changelog if r.key == pseudonym.encode()][-1]
        assert last.value is None, "the state's changelog ends with a tombstone"

        # --- a replay of her old events does not bring her back ------------------------------
        await _publish(stack, jane, f"{tag}-{uuid.uuid5(uuid.NAMESPACE_URL, jane).hex[:8]}", start)
        await wait_all_committed(s, timeout_s=90)
        assert await client.get(f"{s.redis_prefix}score:{jane}") is None
        assert await client.get(f"{s.redis_prefix}state:{jane}") is None
        stats = await client.hgetall(f"{s.redis_prefix}stats")
        assert int(stats.get(b"erased_skipped", 0)) >= 4

        # --- erase carol through the API; unknown leads touch nothing ------------------------
        async with stack.api("admin") as api:
            got = await api.delete(f"/v1/leads/{carol}", params={"reason": "retention"})
            assert got.status_code in (200, 202), got.text
            follow = await api.get(f"/v1/erasures/{got.json()['id']}")
            assert follow.status_code == 200
            keys_before = len(await _redis_dump(client, s.redis_prefix))
            unknown = await api.delete(f"/v1/leads/nobody-{tag}")
            assert unknown.status_code == 404 and "nothing was erased" in unknown.text
            assert len(await _redis_dump(client, s.redis_prefix)) == keys_before
            async with stack.api("read") as reader:
                assert (await reader.delete(f"/v1/leads/{bob}")).status_code == 403
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "leadscore", "erase", f"nobody-{tag}"],
            env=worker_env(s), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert cli.returncode == 2 and "nothing was erased" in cli.stderr
    finally:
        await client.aclose()


async def test_a_lead_inactive_past_the_retention_is_forgotten_like_an_erasure(
    stack: Stack,
) -> None:
    s = stack.settings
    tag = uuid.uuid4().hex[:6]
    old, active = f"old-{tag}", f"active-{tag}"
    await _publish(stack, old, f"{tag}-o", datetime.now(UTC) - timedelta(days=3))
    await _publish(stack, active, f"{tag}-a", datetime.now(UTC) - timedelta(minutes=5))
    client = aioredis.Redis.from_url(s.redis_url)
    try:

        async def forgotten() -> bool:
            return (
                await client.get(f"{s.redis_prefix}score:{active}") is not None
                and await client.get(f"{s.redis_prefix}state:{old}") is None
                and await client.get(f"{s.redis_prefix}score:{old}") is None
                and any(e.get("type") == "lead.erased" for e in _hooks_of(stack, old))
            )

        await _wait("the inactive lead forgotten", forgotten, stack, timeout_s=120)
        receipts = [
            await LeadIds(client, s.redis_prefix).receipt(r.decode())
            for r in await client.zrange(f"{s.redis_prefix}erasures", 0, -1)
        ]
        by_retention = [r for r in receipts if r is not None and r.requested_by == "retention"]
        assert by_retention and by_retention[-1].reason == "no event for 1 days"
        assert await client.get(f"{s.redis_prefix}state:{active}") is not None
    finally:
        await client.aclose()


def _hooks_of(stack: Stack, lead: str) -> list[dict[str, Any]]:
    return [
        r.payload()
        for r in stack.receiver.requests()
        if r.payload().get("data", {}).get("lead_id") == lead
    ]


async def test_the_topics_leadscore_creates_carry_its_retention(stack: Stack) -> None:
    s = stack.settings
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        topics = [s.scores_topic, s.dead_letter_topic, s.training_topic, s.erasures_topic]
        found = {}
        for response in await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        ):
            for _, _, _, name, entries in response.resources:
                found[name] = {entry[0]: entry[1] for entry in entries}.get("retention.ms")
    finally:
        await admin.close()
    day = 86_400_000
    assert found == {
        s.scores_topic: str(30 * day),
        s.dead_letter_topic: str(7 * day),
        s.training_topic: "-1",
        s.erasures_topic: str(7 * day),  # LEADSCORE_ERASURES_RETENTION_DAYS
    }
