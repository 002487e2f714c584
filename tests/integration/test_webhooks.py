"""Signed webhooks end to end: ``leadscore api`` + ``leadscore worker`` processes, the real broker
and Redis, and a real HTTP receiver on 127.0.0.1 that verifies with ``standardwebhooks``.

One worker and one API process serve the module (a Tansu group join takes ~10 s). Each
test makes its own subscription, filtered to its own leads, through the API. Retries are
short here (6 attempts over 6 s) so a dead letter takes seconds, not a day.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from api_harness import Stack, drop_redis_keys, make_keys, running_api
from webhook_receiver import Receiver, Request
from worker_harness import (
    WorkerProcess,
    by_lead,
    committed_offsets,
    create_topics,
    end_offsets,
    read_to_end,
    send_records,
    worker_settings,
)

from leadscore.infra.embedded.addresses import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

_T = TypeVar("_T")

#: The retry policy of this module's worker: 6 attempts, the first retry after 0.1 s, the
#: last 6 s after the first attempt.
RETRIES = {"webhook_max_attempts": 6, "webhook_first_retry_s": 0.1, "webhook_retry_horizon_s": 6.0}


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("webhooks")
    port = free_port()
    settings = worker_settings(
        f"t-webhooks-{uuid.uuid4().hex[:8]}.",
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=root / "models",  # empty: the rules prior scores (no training needed here)
        api_port=port,
        api_jobs_dir=root / "jobs",
        webhook_dead_letter_topic=f"t-webhooks-{uuid.uuid4().hex[:8]}.webhooks.dead-letter.v1",
        webhook_allowed_networks="127.0.0.0/8,::1/128",  # the receiver is local
        webhook_timeout_s=2.0,
        **RETRIES,
    )
    asyncio.run(create_topics(settings))
    worker = WorkerProcess(settings, root / "worker.log")
    api_log = root / "api.log"
    try:
        # the API starts while the worker joins its group (neither needs the other to start)
        with running_api(settings, api_log, loglevel="info", ready_timeout_s=150) as url:
            asyncio.run(worker.wait_ready())
            keys = make_keys(settings, ("read", "admin"))
            yield Stack(settings, url, keys, worker, api_log)
    finally:
        worker.stop()
        drop_redis_keys(settings)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- helpers -------------------------------------------------------------------------------------------


async def eventually(
    what: str,
    probe: Callable[[], Awaitable[_T]],
    done: Callable[[_T], bool],
    stack: Stack,
    timeout_s: float = 60.0,
) -> _T:
    """Call ``probe`` until ``done(result)``; fail with the last result and the logs after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        stack.worker.check_alive()
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"no {what} within {timeout_s:.0f} s; last: {result!r}\n{stack.describe()}",
                pytrace=False,
            )
        await asyncio.sleep(0.1)


def page_view(lead: str, round_: int, tag: str) -> dict[str, Any]:
    """One page view of ``lead``; later rounds are later in event time."""
    start = datetime.now(UTC) - timedelta(hours=1)
    return {
        "specversion": "1.0",
        "id": f"{tag}-{lead}-{round_}",
        "source": "webhook-test",
        "type": "lead.page_viewed",
        "time": (start + timedelta(seconds=10 * round_)).isoformat(),
        "subject": lead,
        "data": {"url": "/pricing" if round_ % 2 else "/docs", "duration_s": 30 + round_},
    }


async def publish_rounds(
    stack: Stack, leads: list[str], rounds: int, tag: str, *, first_round: int = 0
) -> dict[str, list[str]]:
    """``rounds`` score changes of each lead: one page view per lead per round, each round
    published after the worker scored the previous one (a micro-batch scores a lead once).
    Rounds are numbered from ``first_round`` (the leads' earlier rounds, if any).

    Returns the ids of all the leads' score events on the scores topic, per lead, in order.
    """
    settings = stack.settings
    client = aioredis.Redis.from_url(settings.redis_url)
    history = [f"{settings.redis_prefix}history:{lead}" for lead in leads]

    async def scored() -> list[int]:
        return [int(await client.llen(key)) for key in history]

    try:
        for round_ in range(first_round, first_round + rounds):
            await send_records(
                settings.kafka_bootstrap,
                [
                    (
                        settings.activity_topic,
                        lead.encode(),
                        orjson.dumps(page_view(lead, round_, tag)),
                    )
                    for lead in leads
                ],
            )
            await eventually(
                f"round {round_} scored",
                scored,
                lambda n, round_=round_: min(n) > round_,
                stack,
                timeout_s=30,
            )
    finally:
        await client.aclose()

    async def on_topic() -> dict[str, list[str]]:
        records = await read_to_end(
            settings.kafka_bootstrap, [settings.scores_topic], settings.topic_partitions
        )
        events = by_lead(records)
        return {lead: [event["id"] for event in events.get(lead, [])] for lead in leads}

    return await eventually(
        "every score event on the topic",
        on_topic,
        lambda ids: all(len(v) == first_round + rounds for v in ids.values()),
        stack,
    )


async def scores_queued(stack: Stack) -> None:
    """Wait until the worker's webhook agent has taken every score event on the topic.

    The agent decides at queueing time whether a subscription gets an event (a paused one
    does not), and commits its offset only after queueing: committed = end means decided.
    """
    settings = stack.settings

    async def lag() -> int:
        topics, n = [settings.scores_topic], settings.topic_partitions
        ends = await end_offsets(settings.kafka_bootstrap, topics, n)
        done = await committed_offsets(settings.kafka_bootstrap, settings.app_id, topics, n)
        return sum(end - done[tp] for tp, end in ends.items())

    await eventually("the webhook agent to take every score event", lag, lambda n: n == 0, stack)


def first_seen(requests: list[Request], ok_only: bool = True) -> dict[str, list[str]]:
    """Webhook ids per lead in the order the receiver first accepted them."""
    out: dict[str, list[str]] = {}
    for request in requests:
        if ok_only and request.status >= 300:
            continue
        lead = request.payload()["data"]["lead_id"]
        ids = out.setdefault(lead, [])
        if request.webhook_id not in ids:
            ids.append(request.webhook_id)
    return out


async def subscribe(
    api: httpx.AsyncClient, url: str, leads: list[str], **extra: Any
) -> dict[str, Any]:
    response = await api.post(
        "/v1/webhooks", json={"url": url, "filters": {"lead_ids": leads}, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(
    api: httpx.AsyncClient, webhook_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await api.get(
        f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 500, **params}
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["deliveries"]
    return rows


# --- tests ---------------------------------------------------------------------------------------------


async def test_a_score_change_reaches_the_receiver_signed_with_the_secret_the_api_gave(
    stack: Stack, receiver: Receiver
) -> None:
    lead = f"lead-signed-{uuid.uuid4().hex[:6]}"
    async with stack.api() as api:
        created = await subscribe(api, receiver.url, [lead], description="signed e2e")
        secret, webhook_id = created["secret"], created["id"]
        assert secret.startswith("whsec_")
        listed = (await api.get("/v1/webhooks")).json()["webhooks"]
        assert webhook_id in {w["id"] for w in listed} and all("secret" not in w for w in listed)

        expected = (await publish_rounds(stack, [lead], rounds=3, tag="signed"))[lead]
        await eventually(
            "delivery of every score event", lambda: asyncio.sleep(0, receiver.requests()),
            lambda got: set(expected) <= {r.webhook_id for r in got}, stack,
        )  # fmt: skip

        for request in receiver.requests():
            payload = request.verify(secret)  # the stock standardwebhooks verifier
            assert payload["type"] == "lead.score_changed"
            data = payload["data"]
            assert request.webhook_id == data["id"] and data["lead_id"] == lead
            assert {"score", "previous_score", "grade", "previous_grade"} <= set(data)
            assert payload["timestamp"] == data["scored_at"]
            assert request.path == "/hooks/leadscore"
            assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
        got = first_seen(receiver.requests())
        assert got[lead] == expected
        scored = [r.payload()["data"] for r in receiver.requests()]
        assert (
            scored[0]["previous_score"] is None
            and scored[1]["previous_score"] == scored[0]["score"]
        )

        log = await eventually(
            "a delivered log", lambda: deliveries(api, webhook_id),
            lambda rows: len(rows) == 3 and all(r["status"] == "delivered" for r in rows), stack,
        )  # fmt: skip
        assert all(r["attempts"][-1]["status_code"] == 200 for r in log)
        assert {r["webhook_id"] for r in log} == set(expected)

        assert (await api.delete(f"/v1/webhooks/{webhook_id}")).status_code == 204
        assert (await api.get(f"/v1/webhooks/{webhook_id}")).status_code == 404


async def test_the_test_endpoint_fires_a_signed_sample_to_the_receiver(
    stack: Stack, receiver: Receiver
) -> None:
    async with stack.api() as api:
        created = await subscribe(api, receiver.url, ["nobody"])
        fired = await api.post(f"/v1/webhooks/{created['id']}/test")
        assert fired.status_code == 200, fired.text
        result = fired.json()
        assert result["delivered"] is True and result["status_code"] == 200
        (request,) = receiver.requests()
        assert request.webhook_id == result["webhook_id"] and request.webhook_id.startswith("test_")
        assert request.verify(created["secret"])["data"]["lead_id"] == "sample-lead"

        receiver.status = 503
        failed = (await api.post(f"/v1/webhooks/{created['id']}/test")).json()
        assert (
            failed["delivered"] is False
            and failed["status_code"] == 503
            and "503" in failed["error"]
        )
        await api.delete(f"/v1/webhooks/{created['id']}")


async def test_a_receiver_down_then_back_gets_every_delivery_in_order_per_lead(
    stack: Stack, receiver: Receiver
) -> None:
    leads = [f"lead-down-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    async with stack.api() as api:
        created = await subscribe(api, receiver.url, leads)
        receiver.stop()  # connections refused from here on
        expected = await publish_rounds(stack, leads, rounds=3, tag="down")

        def every_lead_failed(rows: list[dict[str, Any]]) -> bool:
            return {r["lead_id"] for r in rows if r["attempts"]} == set(leads)

        failing = await eventually(
            "a failed attempt for every lead", lambda: deliveries(api, created["id"], status="pending"),
            every_lead_failed, stack, timeout_s=30,
        )  # fmt: skip
        errors = [r["attempts"][0]["error"] for r in failing if r["attempts"]]
        assert all("ConnectError" in e for e in errors), errors
        assert all(r["next_attempt_at"] for r in failing if r["attempts"])

        receiver.start()  # back on the same port
        everything = {i for ids in expected.values() for i in ids}
        await eventually(
            "every delivery after the receiver came back", lambda: asyncio.sleep(0, receiver.requests()),
            lambda got: everything <= {r.webhook_id for r in got}, stack,
        )  # fmt: skip
        assert first_seen(receiver.requests()) == expected  # in order, per lead
        for request in receiver.requests():
            request.verify(created["secret"])
        log = await eventually(
            "a delivered log", lambda: deliveries(api, created["id"]),
            lambda rows: len(rows) == 9 and all(r["status"] == "delivered" for r in rows), stack,
        )  # fmt: skip
        assert any(len(r["attempts"]) > 1 for r in log)  # some were retried, none given up
        await api.delete(f"/v1/webhooks/{created['id']}")


async def test_a_failing_receiver_ends_in_dead_letters_that_replay_in_order(
    stack: Stack, receiver: Receiver
) -> None:
    lead = f"lead-dead-{uuid.uuid4().hex[:6]}"
    settings = stack.settings
    receiver.status = 500
    async with stack.api() as api:
        created = await subscribe(api, receiver.url, [lead])
        webhook_id = created["id"]
        expected = (await publish_rounds(stack, [lead], rounds=2, tag="dead"))[lead]

        dead = await eventually(
            "two dead deliveries", lambda: deliveries(api, webhook_id, status="dead"),
            lambda rows: len(rows) == 2, stack, timeout_s=60,
        )  # fmt: skip
        by_id = {row["webhook_id"]: row for row in dead}
        for row in dead:
            assert (
                len(row["attempts"]) == RETRIES["webhook_max_attempts"]
                and row["round_attempts"] == 6
            )
            assert all(a["status_code"] == 500 and "500" in a["error"] for a in row["attempts"])
            assert row["dead_lettered_at"] and row["next_attempt_at"] is None
        # the first event was given up before the second was tried: order holds even in failure
        first, second = by_id[expected[0]], by_id[expected[1]]
        assert first["attempts"][-1]["started_at"] < second["attempts"][0]["started_at"]
        tried = [r.webhook_id for r in receiver.requests()]
        assert tried == [expected[0]] * 6 + [expected[1]] * 6

        letters = await read_to_end(
            settings.kafka_bootstrap,
            [settings.webhook_dead_letter_topic],
            settings.topic_partitions,
        )
        mine = [orjson.loads(r.value) for r in letters if r.key == lead.encode()]
        assert [m["webhook_id"] for m in mine] == expected
        assert all(m["subscription_id"] == webhook_id and len(m["attempts"]) == 6 for m in mine)
        assert mine[0]["payload"]["data"]["id"] == expected[0]

        # the receiver is fixed: replay one, then all that are still dead
        receiver.status = 200
        one = await api.post(f"/v1/webhooks/{webhook_id}/deliveries/{first['id']}/replay")
        assert one.status_code == 202, one.text
        assert one.json()["status"] in ("pending", "delivered") and one.json()["replays"] == 1
        await eventually(
            "the replayed delivery", lambda: api.get(f"/v1/webhooks/{webhook_id}/deliveries/{first['id']}"),
            lambda r: r.json()["status"] == "delivered", stack,
        )  # fmt: skip
        everything = await api.post(f"/v1/webhooks/{webhook_id}/deliveries/replay")
        assert everything.status_code == 202 and everything.json()["replayed"] == [second["id"]]
        await eventually(
            "every replay delivered", lambda: deliveries(api, webhook_id),
            lambda rows: all(r["status"] == "delivered" for r in rows), stack,
        )  # fmt: skip
        assert first_seen(receiver.requests()) == {lead: expected}
        for request in receiver.requests():
            request.verify(created["secret"])
        assert (await deliveries(api, webhook_id, status="dead")) == []
        await api.delete(f"/v1/webhooks/{webhook_id}")


async def test_a_paused_subscription_gets_nothing_queued_and_resumes_with_new_events(
    stack: Stack, receiver: Receiver
) -> None:
    lead = f"lead-paused-{uuid.uuid4().hex[:6]}"
    async with stack.api() as api:
        created = await subscribe(api, receiver.url, [lead], enabled=False)
        await publish_rounds(stack, [lead], rounds=1, tag="paused")
        await scores_queued(stack)  # the paused round was seen (and skipped) before resuming
        resumed = await api.patch(f"/v1/webhooks/{created['id']}", json={"enabled": True})
        assert resumed.status_code == 200 and resumed.json()["enabled"] is True
        assert resumed.json()["secret"] is None  # unchanged, so not shown
        ids = await publish_rounds(stack, [lead], rounds=1, tag="paused", first_round=1)
        await eventually(
            "the event scored after resuming", lambda: asyncio.sleep(0, receiver.requests()),
            lambda got: len(got) >= 1, stack,
        )  # fmt: skip
        assert [r.webhook_id for r in receiver.requests()] == ids[lead][
            1:
        ]  # not the one scored while paused
        await api.delete(f"/v1/webhooks/{created['id']}")


# --- the API on its own ----------------------------------------------------------------------------------


async def test_every_webhook_route_needs_an_admin_key(stack: Stack) -> None:
    routes = [
        ("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("GET", "/v1/webhooks/wh_x"),
        ("PATCH", "/v1/webhooks/wh_x"), ("DELETE", "/v1/webhooks/wh_x"), ("POST", "/v1/webhooks/wh_x/test"),
        ("GET", "/v1/webhooks/wh_x/deliveries"), ("GET", "/v1/webhooks/wh_x/deliveries/dlv_x"),
        ("POST", "/v1/webhooks/wh_x/deliveries/replay"), ("POST", "/v1/webhooks/wh_x/deliveries/dlv_x/replay"),
    ]  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=30) as anonymous,
        stack.api("read") as reader,
    ):
        for method, path in routes:
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthenticated"
            response = await reader.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:192.168.0.1]/hook", "private"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
async def test_urls_to_private_addresses_or_malformed_are_refused_at_creation(
    stack: Stack, url: str, problem: str
) -> None:
    async with stack.api() as api:
        response = await api.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_url" and problem in error["message"], error


async def test_secrets_are_taken_or_generated_shown_once_and_rotated(
    stack: Stack, receiver: Receiver
) -> None:
    own = "whsec_" + "QUJD" * 8  # base64 of 24 bytes
    async with stack.api() as api:
        assert (
            await api.post("/v1/webhooks", json={"url": receiver.url, "secret": "whsec_short"})
        ).status_code == 422
        created = await subscribe(api, receiver.url, ["nobody"], secret=own)
        assert created["secret"] == own
        shown = (await api.get(f"/v1/webhooks/{created['id']}")).json()
        assert "secret" not in shown and shown["filters"]["lead_ids"] == ["nobody"]

        rotated = await api.patch(f"/v1/webhooks/{created['id']}", json={"rotate_secret": True})
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_") and new_secret != own
        fired = (await api.post(f"/v1/webhooks/{created['id']}/test")).json()
        assert fired["delivered"] is True
        receiver.requests()[-1].verify(new_secret)  # signed with the new secret from now on

        both = await api.patch(
            f"/v1/webhooks/{created['id']}", json={"rotate_secret": True, "secret": own}
        )
        assert both.status_code == 422
        null_url = await api.patch(f"/v1/webhooks/{created['id']}", json={"url": None})
        assert (
            null_url.status_code == 422 and "cannot be null" in null_url.json()["error"]["message"]
        )
        refused = await api.patch(
            f"/v1/webhooks/{created['id']}", json={"url": "http://192.168.1.1/"}
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_url"
        filters = await api.patch(
            f"/v1/webhooks/{created['id']}", json={"filters": {"min_score": 70}}
        )
        assert filters.json()["filters"] == {
            "min_score": 70,
            "grade_change_only": False,
            "lead_ids": None,
        }
        await api.delete(f"/v1/webhooks/{created['id']}")
        assert (await api.delete(f"/v1/webhooks/{created['id']}")).status_code == 404


async def test_the_delivery_log_pages_without_gaps_and_a_pending_delivery_is_not_replayed(
    stack: Stack, receiver: Receiver
) -> None:
    from leadscore.infra.webhooks.messages import delivery_id
    from leadscore.infra.webhooks.store import QueuedDelivery, WebhookStore
    from leadscore.schemas.webhooks import DeliveryRecord

    settings = stack.settings
    async with stack.api() as api:
        created = await subscribe(
            api, receiver.url, ["nobody"], enabled=False
        )  # paused: stays pending
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            store = WebhookStore(client, settings.redis_prefix)
            now = datetime.now(UTC)
            records = [
                DeliveryRecord(
                    id=delivery_id(created["id"], f"sc_{i}"),
                    subscription_id=created["id"],
                    webhook_id=f"sc_{i}",
                    lead_id=f"lead-{i % 3}",
                    status="pending",
                    created_at=now,
                    body="{}",
                )  # fmt: skip
                for i in range(7)
            ]
            # one call: the log entries share a millisecond, which the cursor must survive
            assert (
                await store.enqueue([QueuedDelivery(created["id"], r.lead_id, r) for r in records])
                == 7
            )
            assert (
                await store.enqueue([QueuedDelivery(created["id"], r.lead_id, r) for r in records])
                == 0
            )
        finally:
            await client.aclose()

        seen: list[str] = []
        cursor = None
        for _ in range(5):
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await api.get(f"/v1/webhooks/{created['id']}/deliveries", params=params)).json()
            seen += [d["id"] for d in page["deliveries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(r.id for r in records) and len(seen) == 7

        bad = await api.get(
            f"/v1/webhooks/{created['id']}/deliveries", params={"cursor": "nonsense"}
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
        pending = await api.post(f"/v1/webhooks/{created['id']}/deliveries/{records[0].id}/replay")
        assert pending.status_code == 409 and pending.json()["error"]["code"] == "delivery_pending"
        unknown = await api.post(f"/v1/webhooks/{created['id']}/deliveries/dlv_nope/replay")
        assert unknown.status_code == 404
        assert (await api.post(f"/v1/webhooks/{created['id']}/deliveries/replay")).json() == {
            "replayed": []
        }
        await api.delete(f"/v1/webhooks/{created['id']}")


async def test_the_address_is_checked_again_at_delivery_time(receiver: Receiver) -> None:
    """A subscription made while its name was public and now resolving to a private address
    (DNS rebinding) is refused at send time: the request never leaves."""
    from leadscore.infra.webhooks.addresses import AddressPolicy, parse_networks
    from leadscore.infra.webhooks.http import post_signed
    from leadscore.infra.webhooks.signing import generate_secret

    local = f"http://localhost:{receiver.port}/hooks/leadscore"  # resolves to loopback
    async with httpx.AsyncClient() as client:
        refused = await post_signed(
            client, local, generate_secret(), "sc_x", b"{}", AddressPolicy(), 2.0
        )
        assert not refused.ok and refused.status_code is None
        assert (
            refused.error is not None and "refused" in refused.error and "loopback" in refused.error
        )
        assert receiver.requests() == []
        allowed = AddressPolicy(allowed_networks=parse_networks("127.0.0.0/8,::1/128"))
        sent = await post_signed(client, local, generate_secret(), "sc_x", b"{}", allowed, 2.0)
    assert sent.ok and sent.status_code == 200
    assert receiver.requests()[0].headers["host"] == f"localhost:{receiver.port}"


async def test_a_receiver_slower_than_the_timeout_fails_the_attempt(receiver: Receiver) -> None:
    from leadscore.infra.webhooks.addresses import AddressPolicy, parse_networks
    from leadscore.infra.webhooks.http import post_signed
    from leadscore.infra.webhooks.signing import generate_secret

    receiver.delay_s = 1.5
    allowed = AddressPolicy(allowed_networks=parse_networks("127.0.0.0/8"))
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        outcome = await post_signed(
            client, receiver.url, generate_secret(), "sc_slow", b"{}", allowed, 0.5
        )
    assert not outcome.ok and outcome.error == "no answer within 0.5 s"
    assert time.monotonic() - started < 1.4
