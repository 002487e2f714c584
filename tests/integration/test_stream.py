"""The WebSocket feed ``/v1/stream`` on the real broker and Redis, served by uvicorn in this process.

Score events are published to the run's own scores topic as ``LeadScored`` JSON (and, in
one test, produced by a real worker from lead events); clients are ``websockets``
connections. Checked: authentication, lead and grade filters, a slow client dropping
(and told so) while a fast one gets everything, resumes from memory, from the topic
and on another replica, resumes that cannot be served, and a broker restart the API
and its clients live through.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from worker_harness import read_to_end, running_worker, wait_all_committed, worker_settings

from leadscore.api.app import create_app
from leadscore.api.websocket import feed as score_feed_module
from leadscore.api.websocket.feed import ScoreFeed
from leadscore.api.websocket.protocol import decode_position, encode_position
from leadscore.infra.access import KeyStore
from leadscore.infra.embedded.addresses import free_port
from leadscore.infra.embedded.servers import EmbeddedKafka
from leadscore.infra.kafka.client import ensure_topics
from leadscore.infra.kafka.publish import publish
from leadscore.schemas.scores import LeadScored, Reason
from leadscore.settings import Settings
from leadscore.simulation.config import SimConfig
from leadscore.simulation.simulator import Simulator

pytestmark = [pytest.mark.timeout(120)]

Message = dict[str, Any]
_RECEIVE_TIMEOUT_S = 15.0


# --- the API in this process -------------------------------------------------------------------


@dataclass
class Api:
    """A running API: its app (to look at the feed) and its base URLs."""

    app: FastAPI
    port: int

    @property
    def feed(self) -> ScoreFeed:
        return self.app.state.ctx.feed

    def ws(self, **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}/v1/stream" + (f"?{params}" if params else "")


async def until(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s", pytrace=False)
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_api(settings: Settings, *, wait_connected: bool = True) -> AsyncIterator[Api]:
    """``create_app(settings)`` under uvicorn on a free port, its feed positioned."""
    port = free_port()
    app = create_app(settings, follow_models=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        await until("uvicorn start", lambda: server.started or task.done())
        if task.done():
            task.result()
            pytest.fail("uvicorn stopped at start", pytrace=False)
        api = Api(app, port)
        if wait_connected:
            await until("feed positioned on the scores topic", lambda: api.feed.connected)
        yield api
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


# --- keys, events, clients ---------------------------------------------------------------------


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, name_prefix: str, tmp_path: Path) -> Settings:
    """This test's topics (4 partitions), Redis keys and an empty registry (rules prior)."""
    return worker_settings(
        name_prefix,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        model_dir=tmp_path / "models",
    )


@pytest.fixture
async def read_key(settings: Settings, redis_client: aioredis.Redis) -> str:
    await ensure_topics(settings)
    key, _ = await KeyStore(redis_client, settings.redis_prefix).create("stream-test", ["read"])
    return key


def score_event(
    lead: str, n: int, *, grade: str = "B", previous_grade: str | None = "B", reasons: int = 1
) -> LeadScored:
    now = datetime.now(UTC)
    return LeadScored(
        id=f"{lead}-{n}", lead_id=lead, score=65, probability=0.65, grade=grade,  # type: ignore[arg-type]
        previous_score=60, previous_grade=previous_grade, model_version="test", base_score=40.0,  # type: ignore[arg-type]
        reasons=[Reason(feature=f"f{i}", label=f"reason number {i} " + "x" * 60, value=float(i),
                        contribution=1.0) for i in range(reasons)],
        cause_event_id=f"cause-{lead}-{n}", event_time=now - timedelta(seconds=1), scored_at=now,
    )  # fmt: skip


@dataclass(frozen=True)
class Published:
    id: str
    lead_id: str
    partition: int
    offset: int


async def publish_scores(settings: Settings, events: Iterable[LeadScored]) -> list[Published]:
    """Publish ``events`` on the scores topic, keyed by lead id as the worker does."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        events = list(events)
        futures = [
            await producer.send(
                settings.scores_topic,
                orjson.dumps(e.model_dump(mode="json")),
                key=e.lead_id.encode(),
            )
            for e in events
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Published(e.id, e.lead_id, m.partition, m.offset) for e, m in zip(events, metadata)]


async def receive(ws: ClientConnection, timeout_s: float = _RECEIVE_TIMEOUT_S) -> Message:
    try:
        return orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    except TimeoutError:
        pytest.fail(f"no message within {timeout_s:.0f} s")


async def receive_scores(
    ws: ClientConnection, count: int, *, also: Iterable[str] = ()
) -> list[Message]:
    """Messages until ``count`` score messages arrived; fails on a type not in ``also``."""
    out: list[Message] = []
    while sum(m["type"] == "score" for m in out) < count:
        message = await receive(ws)
        if message["type"] not in ("score", *also):
            pytest.fail(f"unexpected message {message}", pytrace=False)
        out.append(message)
    return out


async def nothing_more(ws: ClientConnection, wait_s: float = 0.5) -> None:
    try:
        message = await asyncio.wait_for(ws.recv(), wait_s)
    except TimeoutError:
        return
    pytest.fail(f"expected nothing more, got {message!r}", pytrace=False)


def score_ids(messages: Iterable[Message]) -> list[str]:
    return [m["data"]["id"] for m in messages if m["type"] == "score"]


def in_lead_order(ids: list[str], published: list[Published]) -> bool:
    """Each lead's events arrived in publish order (one lead's events share a partition)."""
    order = {p.id: (p.partition, p.offset) for p in published}
    lead = {p.id: p.lead_id for p in published}
    last: dict[str, tuple[int, int]] = {}
    for i in ids:
        if lead[i] in last and order[i] <= last[lead[i]]:
            return False
        last[lead[i]] = order[i]
    return True


@asynccontextmanager
async def client(
    api: Api, key: str | None, **query: str
) -> AsyncIterator[tuple[ClientConnection, Message]]:
    """A connection and its ``hello`` message (the key goes in the header)."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    # max_queue=None: the test reads when it likes; a bounded client queue would stop reading
    # the socket, and with it the server's close frame (a 10 s close timeout)
    async with connect(
        api.ws(**query), additional_headers=headers, compression=None, max_queue=None
    ) as ws:
        hello = await receive(ws)
        assert hello["type"] == "hello", hello
        yield ws, hello


# --- tests ---------------------------------------------------------------------------------------


async def test_a_key_with_read_scope_is_needed_and_refusals_say_why(
    settings: Settings, read_key: str
) -> None:
    async with running_api(settings) as api:
        for url, headers in (
            (api.ws(), None),
            (api.ws(api_key="lsk_0123456789ab_wrong"), None),
            (api.ws(), {"X-API-Key": "not-a-key"}),
        ):
            async with connect(url, additional_headers=headers) as ws:
                error = await receive(ws)
                assert error["type"] == "error" and error["code"] == "unauthenticated"
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(api.ws(api_key=read_key, resume="garbage")) as ws:
            assert (await receive(ws))["code"] == "invalid_position"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        async with connect(api.ws(api_key=read_key)) as ws:  # browsers: the key in the query
            hello = await receive(ws)
            assert hello["type"] == "hello" and hello["drop_policy"] == "drop-oldest"
        async with client(api, read_key) as (_, hello):
            assert hello["subscription"] == {"leads": None, "grades_only": False}


async def test_every_client_gets_what_its_filter_asks_for(
    settings: Settings, read_key: str
) -> None:
    async with running_api(settings) as api:
        async with (
            client(api, read_key) as (everything, _),
            client(api, read_key, leads="lead-a,lead-c") as (two_leads, hello),
            client(api, read_key, grades_only="true") as (grades, _),
            client(api, read_key) as (changes_later, _),
        ):
            assert hello["subscription"]["leads"] == ["lead-a", "lead-c"]
            events = []
            for n in range(30):
                lead = f"lead-{'abcd'[n % 4]}"
                changed = n % 5 == 0
                events.append(
                    score_event(lead, n, grade="A" if changed else "B", previous_grade="B")
                )
            published = await publish_scores(settings, events)
            all_ids = [p.id for p in published]

            got = score_ids(await receive_scores(everything, 30))
            assert sorted(got) == sorted(all_ids) and in_lead_order(got, published)
            of_two = sorted(p.id for p in published if p.lead_id in ("lead-a", "lead-c"))
            assert sorted(score_ids(await receive_scores(two_leads, len(of_two)))) == of_two
            changed = sorted(e.id for e in events if e.grade != e.previous_grade)
            assert sorted(score_ids(await receive_scores(grades, len(changed)))) == changed
            for ws in (two_leads, grades):
                await nothing_more(ws)

            # a client changes its filter with a message
            assert len(await receive_scores(changes_later, 30)) == 30
            await changes_later.send(
                orjson.dumps({"type": "subscribe", "leads": ["lead-d"]}).decode()
            )
            ack = await receive(changes_later)
            assert ack["type"] == "subscribed" and ack["subscription"]["leads"] == ["lead-d"]
            await changes_later.send("not json")
            assert (await receive(changes_later))["code"] == "invalid_message"
            more = await publish_scores(settings, [score_event(f"lead-{c}", 100) for c in "abcd"])
            assert score_ids(await receive_scores(changes_later, 1)) == ["lead-d-100"]
            assert score_ids(await receive_scores(everything, 4)) != []
            await nothing_more(changes_later)
            assert len(more) == 4
            stats = api.feed.stats()
            assert stats["clients"] == 4 and stats["events"] == 34 and stats["connected"] == 1


async def test_a_slow_client_is_told_what_it_lost_while_a_fast_one_gets_everything(
    kafka_bootstrap: str,
    redis_url: str,
    name_prefix: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    settings = worker_settings(name_prefix, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
                               model_dir=tmp_path, ws_queue_size=16)  # fmt: skip
    await ensure_topics(settings)
    key, _ = await KeyStore(redis_client, settings.redis_prefix).create("stream-test", ["read"])
    total = 2000
    async with running_api(settings) as api:
        # the slow client: a tiny receive buffer, and it reads nothing until the end
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", api.port))
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            connect(
                api.ws(), sock=sock, additional_headers=headers, max_queue=1, compression=None
            ) as slow,
            client(api, key) as (fast, _),
        ):
            assert (await receive(slow))["type"] == "hello"
            events = [score_event(f"lead-{n % 50}", n, reasons=12) for n in range(total)]
            published = await publish_scores(settings, events)
            fast_messages = await receive_scores(fast, total)
            assert [m["type"] for m in fast_messages] == ["score"] * total  # no drop
            fast_ids = score_ids(fast_messages)
            assert sorted(fast_ids) == sorted(e.id for e in events) and in_lead_order(
                fast_ids, published
            )

            slow_messages: list[Message] = []
            while True:  # now read everything it has
                try:
                    slow_messages.append(orjson.loads(await asyncio.wait_for(slow.recv(), 2.0)))
                except TimeoutError:
                    break
            drops = [m for m in slow_messages if m["type"] == "dropped"]
            slow_ids = score_ids(slow_messages)
            assert drops, "the slow client should have lost events"
            assert (
                sum(d["count"] for d in drops) + len(slow_ids) == total
            )  # every event accounted for
            assert in_lead_order(slow_ids, published)
            assert api.feed.stats()["dropped"] == sum(d["count"] for d in drops)

        # resuming from the first drop's position gives back everything from there
        resume = drops[0]["resume"]
        offsets = decode_position(resume)
        expected = sorted(p.id for p in published if p.offset >= offsets[p.partition])
        async with client(api, key, resume=resume) as (again, hello):
            assert hello["replay"] == "memory"
            replayed = await receive_scores(again, len(expected))
            done = await receive(again)
            assert done["type"] == "resumed" and done["count"] == len(expected)
            assert sorted(score_ids(replayed)) == expected


async def test_resume_after_disconnect_returns_exactly_the_missed_events(
    settings: Settings, read_key: str
) -> None:
    async with running_api(settings) as api:
        async with client(api, read_key) as (ws, _):
            first = await publish_scores(settings, [score_event(f"l{n % 7}", n) for n in range(40)])
            got = await receive_scores(ws, 25)  # the connection drops after 25 of 40
        position = got[-1]["position"]
        seen = set(score_ids(got))
        second = await publish_scores(
            settings, [score_event(f"l{n % 7}", n) for n in range(40, 55)]
        )
        missed = sorted(p.id for p in first + second if p.id not in seen)
        async with client(api, read_key, resume=position) as (ws, hello):
            assert hello["replay"] == "memory" and hello["resume"] == position
            # what this process had seen when the client came back, then "resumed", then live
            # events (the second batch may still be on its way to the feed)
            replayed = await receive_scores(ws, len(missed), also=["resumed"])
            assert sorted(score_ids(replayed)) == missed
            assert in_lead_order(score_ids(got) + score_ids(replayed), first + second)
            (done,) = [m for m in replayed if m["type"] == "resumed"]
            assert done["source"] == "memory"
            assert done["count"] == replayed.index(done)  # the score messages before it
            live = await publish_scores(settings, [score_event("l0", 99)])
            assert score_ids(await receive_scores(ws, 1)) == [live[0].id]
            await nothing_more(ws)
        assert api.feed.stats()["resumes_memory"] == 1


async def test_resume_reads_the_topic_when_memory_is_short_and_on_another_replica(
    kafka_bootstrap: str,
    redis_url: str,
    name_prefix: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    settings = worker_settings(name_prefix, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
                               model_dir=tmp_path, ws_replay_size=5)  # fmt: skip
    await ensure_topics(settings)
    key, _ = await KeyStore(redis_client, settings.redis_prefix).create("stream-test", ["read"])
    async with running_api(settings) as api:
        async with client(api, key, leads="l1,l2,l3") as (ws, _):
            first = await publish_scores(settings, [score_event(f"l{n % 4}", n) for n in range(20)])
            got = await receive_scores(ws, 4)
        position = got[-1]["position"]
        seen = set(score_ids(got))
        second = await publish_scores(
            settings, [score_event(f"l{n % 4}", n) for n in range(20, 50)]
        )
        missed = sorted(p.id for p in first + second if p.id not in seen and p.lead_id != "l0")
        # same process: only the last 5 events are in memory, the rest comes from the topic
        async with client(api, key, leads="l1,l2,l3", resume=position) as (ws, hello):
            assert hello["replay"] == "topic"
            messages = await receive_scores(ws, len(missed), also=["resumed"])
            replayed = score_ids(messages)
            assert sorted(replayed) == missed
            assert in_lead_order(score_ids(got) + replayed, first + second)
            (done,) = [m for m in messages if m["type"] == "resumed"]
            assert (done["source"], done["count"]) == ("topic", messages.index(done))
            await nothing_more(ws)
        # another replica, started after all of it: everything comes from the topic
        async with (
            running_api(settings) as other,
            client(other, key, leads="l1,l2,l3", resume=position) as (ws, hello),
        ):
            assert hello["replay"] == "topic"
            messages = await receive_scores(ws, len(missed), also=["resumed"])
            assert sorted(score_ids(messages)) == missed
            if messages[-1]["type"] != "resumed":
                assert (await receive(ws))["type"] == "resumed"
            live = await publish_scores(settings, [score_event("l2", 77)])
            assert score_ids(await receive_scores(ws, 1)) == [live[0].id]
            # and a position from this replica resumes on the first one
            async with client(api, key, leads="l1,l2,l3", resume=position) as (ws2, _):
                messages = await receive_scores(ws2, len(missed) + 1, also=["resumed"])
                assert sorted(score_ids(messages)) == sorted([*missed, live[0].id])


async def test_a_resume_that_cannot_be_served_says_so_and_the_feed_goes_on(
    kafka_bootstrap: str,
    redis_url: str,
    name_prefix: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    settings = worker_settings(name_prefix, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url,
                               model_dir=tmp_path, ws_replay_size=2, ws_resume_max_events=10)  # fmt: skip
    await ensure_topics(settings)
    key, _ = await KeyStore(redis_client, settings.redis_prefix).create("stream-test", ["read"])
    async with running_api(settings) as api:
        start = api.feed.hub.vector()
        await publish_scores(settings, [score_event(f"l{n}", n) for n in range(30)])
        await until("30 events", lambda: api.feed.hub.events == 30)
        cases = {
            "too_old": encode_position(start),  # 30 events back, the limit is 10
            "invalid": "v1.0.0",  # two partitions: not this topic
        }
        for reason, position in cases.items():
            async with client(api, key, resume=position) as (ws, hello):
                failed = await receive(ws)
                assert failed["type"] == "resume_failed" and failed["reason"] == reason
                assert "GET /v1/leads/" in failed["message"]
                live = await publish_scores(settings, [score_event("l1", 100)])
                assert score_ids(await receive_scores(ws, 1)) == [live[0].id]
        # a position past the topic's end (another deployment's)
        async with client(api, key, resume="v1.zz.zz.zz.zz") as (ws, _):
            failed = await receive(ws)
            assert (failed["type"], failed["reason"]) == ("resume_failed", "invalid")
        assert api.feed.stats()["resumes_failed"] == 3


async def test_the_api_and_its_clients_live_through_a_broker_restart(
    redis_url: str,
    name_prefix: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(score_feed_module, "_PROBE_INTERVAL_S", 0.5)  # notice the loss sooner
    port = free_port()
    broker = EmbeddedKafka(port=port)
    broker.start()
    try:
        settings = worker_settings(name_prefix, kafka_bootstrap=broker.bootstrap, redis_url=redis_url,
                                   model_dir=tmp_path)  # fmt: skip
        await ensure_topics(settings)
        key, _ = await KeyStore(redis_client, settings.redis_prefix).create("stream-test", ["read"])
        async with running_api(settings) as api, client(api, key) as (ws, _):
            await publish_scores(settings, [score_event(f"l{n}", n) for n in range(3)])
            assert len(await receive_scores(ws, 3)) == 3

            broker.stop()
            await until("the feed noticing the broker is gone", lambda: not api.feed.connected)
            # Clients are told, once, and a client that connects meanwhile too (after hello).
            interrupted = await receive(ws)
            assert interrupted["type"] == "feed_interrupted", interrupted
            assert "none missed" in interrupted["message"] and interrupted["since"]
            async with client(api, key) as (late, _):
                assert (await receive(late))["type"] == "feed_interrupted"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as http:
                ready = await http.get("/readyz")
                assert (
                    ready.status_code == 503 and ready.json()["checks"]["broker"] == "not connected"
                )
                assert ready.headers["retry-after"] == "5"
                assert (await http.get("/healthz")).status_code == 200

            broker = EmbeddedKafka(port=port)  # memory storage: an empty broker, topics recreated
            broker.start()
            await ensure_topics(settings)
            await until("the feed reconnecting", lambda: api.feed.connected, timeout_s=60)
            restored = await receive(ws)
            assert restored["type"] == "feed_restored" and restored["interrupted_s"] > 0, restored
            again = await publish_scores(settings, [score_event(f"l{n}", n) for n in range(3, 6)])
            assert sorted(score_ids(await receive_scores(ws, 3))) == sorted(p.id for p in again)
            assert api.feed.stats()["reconnects"] >= 1
    finally:
        broker.stop()


@pytest.mark.slow
async def test_a_lead_event_becomes_a_score_on_the_websocket(
    settings: Settings, read_key: str
) -> None:
    """End to end: lead events -> real worker -> leads.scores.v1 -> API feed -> client."""
    events = list(Simulator(SimConfig(n_leads=6, span_days=5, seed=11,
                                      start=datetime(2025, 2, 1, tzinfo=UTC))).events())  # fmt: skip
    leads = sorted({e["subject"] for e in events})
    async with (
        running_worker(settings, settings.model_dir.parent / "worker.log") as worker,
        running_api(settings) as api,
        client(api, read_key) as (everything, _),
        client(api, read_key, leads=leads[0]) as (one_lead, _),
    ):
        await publish(events, settings)
        await wait_all_committed(settings, workers=[worker])  # every score is on the topic now
        records = await read_to_end(
            settings.kafka_bootstrap, [settings.scores_topic], settings.topic_partitions
        )
        on_topic = [orjson.loads(r.value) for r in records]
        assert {e["lead_id"] for e in on_topic} == set(leads)
        got = await receive_scores(everything, len(on_topic))
        assert sorted(score_ids(got)) == sorted(e["id"] for e in on_topic)
        assert sorted((m["data"] for m in got), key=lambda e: e["id"]) == sorted(
            on_topic, key=lambda e: e["id"]
        )
        mine = [m for m in got if m["data"]["lead_id"] == leads[0]]
        got_one = await receive_scores(one_lead, len(mine))
        assert score_ids(got_one) == score_ids(mine)
        for message in got_one:
            LeadScored.model_validate(message["data"])
        await nothing_more(one_lead)
