"""The WebSocket feed's bookkeeping without a network: positions, filters, queues, drops, resumes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from leadscore.api.websocket.endpoint import StreamRequest
from leadscore.api.websocket.feed import ScoreFeed
from leadscore.api.websocket.hub import FanOut, FeedClient, FeedFullError
from leadscore.api.websocket.protocol import (
    ScoreEntry,
    StreamRequestError,
    Subscription,
    decode_position,
    encode_position,
)
from leadscore.settings import Settings


def event(lead: str, n: int, grade: str = "B", previous_grade: str | None = "B") -> dict[str, Any]:
    return {
        "id": f"{lead}-{n}",
        "lead_id": lead,
        "score": 70,
        "grade": grade,
        "previous_grade": previous_grade,
    }


def publish(hub: FanOut, partition: int, body: dict[str, Any]) -> None:
    """Publish ``body`` at the next offset of ``partition``."""
    offset = hub.vector()[partition]
    hub.publish(partition, offset, orjson.dumps(body), body)


def drain(client: FeedClient) -> list[dict[str, Any]]:
    """Every message the client has waiting, decoded, in order."""
    out = []
    while frames := client.take():
        out.extend(orjson.loads(frame) for frame in frames)
    return out


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["data"]["id"] for m in messages if m["type"] == "score"]


def hub_with(
    partitions: int = 2,
    *,
    queue: int = 100,
    ring: int = 100,
    max_clients: int = 100,
    resume_max: int = 10_000,
) -> FanOut:
    hub = FanOut(queue, ring, max_clients, resume_max)
    hub.reset([0] * partitions)
    return hub


# --- positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offsets", [(0,), (0, 0, 0, 0), (35, 36, 1295, 10**12), tuple(range(64))])
def test_positions_round_trip(offsets: tuple[int, ...]) -> None:
    text = encode_position(offsets)
    assert text.startswith("v1.")
    assert decode_position(text) == offsets


@pytest.mark.parametrize(
    "text", ["", "1.2.3", "v2.1.2", "v1.", "v1.1..2", "v1.1.-2", "v1.1.zz!", "v1." + "1." * 3000]
)
def test_malformed_positions_are_refused_with_a_code(text: str) -> None:
    with pytest.raises(StreamRequestError) as info:
        decode_position(text)
    assert info.value.code == "invalid_position"


def test_every_message_position_is_the_feed_position_after_the_event() -> None:
    hub = hub_with(3)
    client = FeedClient(Subscription(), 100)
    hub.attach(client)
    publish(hub, 1, event("a", 1))
    publish(hub, 1, event("a", 2))
    publish(hub, 2, event("b", 1))
    positions = [m["position"] for m in drain(client)]
    assert [decode_position(p) for p in positions] == [(0, 1, 0), (0, 2, 0), (0, 2, 1)]


def test_a_score_message_carries_the_record_unchanged() -> None:
    hub = hub_with(1)
    client = FeedClient(Subscription(), 10)
    hub.attach(client)
    body = {"lead_id": "l1", "score": 88, "grade": "A", "reasons": [{"feature": "x", "value": 1.5}]}
    hub.publish(0, 0, orjson.dumps(body), body)
    (message,) = drain(client)
    assert message == {"type": "score", "position": "v1.1", "data": body}


# --- filters -----------------------------------------------------------------------------------


def test_lead_and_grade_filters() -> None:
    hub = hub_with(2)
    everyone = FeedClient(Subscription(), 100)
    two_leads = FeedClient(Subscription.parse("a,c", None), 100)
    grades = FeedClient(Subscription.parse(None, "true"), 100)
    grades_of_a = FeedClient(Subscription.parse(["a"], True), 100)
    for client in (everyone, two_leads, grades, grades_of_a):
        hub.attach(client)
    publish(hub, 0, event("a", 1, "B", None))  # a first score is a grade change
    publish(hub, 1, event("b", 1, "C", None))
    publish(hub, 0, event("a", 2, "B", "B"))
    publish(hub, 1, event("c", 1, "A", None))
    publish(hub, 1, event("b", 2, "B", "C"))
    publish(hub, 0, event("a", 3, "A", "B"))
    assert ids(drain(everyone)) == ["a-1", "b-1", "a-2", "c-1", "b-2", "a-3"]
    assert ids(drain(two_leads)) == ["a-1", "a-2", "c-1", "a-3"]
    assert ids(drain(grades)) == ["a-1", "b-1", "c-1", "b-2", "a-3"]
    assert ids(drain(grades_of_a)) == ["a-1", "a-3"]


def test_resubscribing_changes_what_arrives_and_purges_what_no_longer_matches() -> None:
    hub = hub_with(1)
    client = FeedClient(Subscription(), 100)
    hub.attach(client)
    publish(hub, 0, event("a", 1))
    publish(hub, 0, event("b", 1))
    hub.resubscribe(client, Subscription.parse(["b"], None))
    publish(hub, 0, event("a", 2))
    publish(hub, 0, event("b", 2))
    assert ids(drain(client)) == ["b-1", "b-2"]
    hub.resubscribe(client, Subscription())
    publish(hub, 0, event("a", 3))
    assert ids(drain(client)) == ["a-3"]


@pytest.mark.parametrize(
    ("leads", "grades_only", "code"),
    [
        (",,", None, "invalid_subscription"),
        ([1, 2], None, "invalid_subscription"),
        ({"a": 1}, None, "invalid_subscription"),
        (",".join(f"l{i}" for i in range(1001)), None, "invalid_subscription"),
        (None, "maybe", "invalid_subscription"),
    ],
)
def test_bad_subscriptions_are_refused(leads: Any, grades_only: Any, code: str) -> None:
    with pytest.raises(StreamRequestError) as info:
        Subscription.parse(leads, grades_only)
    assert info.value.code == code


def test_query_parsing() -> None:
    request = StreamRequest.from_query({"leads": " a , b", "grades_only": "1", "resume": "v1.3.a"})
    assert request.subscription == Subscription(frozenset({"a", "b"}), True)
    assert request.resume == (3, 10)
    assert StreamRequest.from_query({}).resume is None


# --- queues and drops --------------------------------------------------------------------------


def test_a_full_queue_drops_the_oldest_and_says_how_many_and_where_to_resume() -> None:
    hub = hub_with(2, queue=3)
    client = FeedClient(Subscription(), 3)
    hub.attach(client)
    for n in range(10):
        publish(hub, n % 2, event(f"l{n}", n))
    messages = drain(client)
    assert messages[0]["type"] == "dropped"
    assert messages[0]["count"] == 7
    assert ids(messages[1:]) == ["l7-7", "l8-8", "l9-9"]
    # the resume position is just before the first dropped event (l0-0, partition 0 offset 0)
    assert decode_position(messages[0]["resume"]) == (0, 0)
    # resuming there gives back exactly what was dropped, and the rest
    again = FeedClient(Subscription(), 100)
    plan = hub.attach(again, decode_position(messages[0]["resume"]))
    assert plan.source == "memory"
    assert [again.frame_of(e) for e in plan.replay] == [e.frame for e in plan.replay]
    assert [orjson.loads(e.frame)["data"]["id"] for e in plan.replay] == [
        f"l{n}-{n}" for n in range(10)
    ]


def test_drops_are_counted_per_run_and_the_position_is_of_the_first_of_each_run() -> None:
    hub = hub_with(1, queue=2)
    client = FeedClient(Subscription(), 2)
    hub.attach(client)
    for n in range(5):  # 0..4: 0, 1, 2 dropped
        publish(hub, 0, event("a", n))
    first = drain(client)
    assert [m["type"] for m in first] == ["dropped", "score", "score"]
    assert (first[0]["count"], decode_position(first[0]["resume"])) == (3, (0,))
    for n in range(5, 9):  # 5..8: 5, 6 dropped
        publish(hub, 0, event("a", n))
    second = drain(client)
    assert (second[0]["count"], decode_position(second[0]["resume"])) == (2, (5,))
    assert ids(second) == ["a-7", "a-8"]
    assert client.dropped_total == 5
    assert hub.stats()["dropped"] == 5


def test_a_slow_client_never_costs_a_fast_one_an_event() -> None:
    hub = hub_with(4, queue=8)
    fast, slow = FeedClient(Subscription(), 8), FeedClient(Subscription(), 8)
    hub.attach(fast)
    hub.attach(slow)
    received = []
    for n in range(1000):
        publish(hub, n % 4, event(f"l{n % 7}", n))
        if n % 5 == 4:  # the fast client reads now and then, never more than 8 behind
            received += ids(drain(fast))
    received += ids(drain(fast))
    assert received == [f"l{n % 7}-{n}" for n in range(1000)]
    assert fast.dropped_total == 0
    slow_messages = drain(slow)
    dropped = sum(m["count"] for m in slow_messages if m["type"] == "dropped")
    assert dropped + len(ids(slow_messages)) == 1000
    assert len(ids(slow_messages)) == 8


def test_filtered_out_events_do_not_fill_a_queue() -> None:
    hub = hub_with(1, queue=2)
    client = FeedClient(Subscription.parse("x", None), 2)
    hub.attach(client)
    for n in range(50):
        publish(hub, 0, event("other", n))
    publish(hub, 0, event("x", 50))
    assert [m["type"] for m in drain(client)] == ["score"]


def test_control_messages_go_first_and_are_never_dropped() -> None:
    hub = hub_with(1, queue=1)
    client = FeedClient(Subscription(), 1)
    hub.attach(client)
    publish(hub, 0, event("a", 1))
    publish(hub, 0, event("a", 2))
    client.say({"type": "pong"})
    assert [m["type"] for m in drain(client)] == ["pong", "dropped", "score"]


async def test_the_sender_wakes_when_an_event_arrives() -> None:
    hub = hub_with(1)
    client = FeedClient(Subscription(), 10)
    hub.attach(client)
    waiting = asyncio.create_task(client.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    publish(hub, 0, event("a", 1))
    await asyncio.wait_for(waiting, 1)
    hub.detach(client)
    await asyncio.wait_for(client.wait(), 1)  # closed: returns at once
    assert client.closed


def test_too_many_clients_are_refused() -> None:
    hub = hub_with(1, max_clients=2)
    hub.attach(FeedClient(Subscription(), 1))
    last = FeedClient(Subscription(), 1)
    hub.attach(last)
    with pytest.raises(FeedFullError, match="LEADSCORE_WS_MAX_CLIENTS"):
        hub.attach(FeedClient(Subscription(), 1))
    hub.detach(last)
    hub.attach(FeedClient(Subscription(), 1))
    assert hub.stats()["clients"] == 2


# --- resumes -----------------------------------------------------------------------------------


def published(hub: FanOut, count: int, partitions: int) -> list[str]:
    out = []
    for n in range(count):
        publish(hub, n % partitions, event(f"l{n % 5}", n))
        out.append(f"l{n % 5}-{n}")
    return out


def test_resume_from_memory_gets_exactly_what_was_missed_then_live_without_repeats() -> None:
    hub = hub_with(3, ring=1000)
    first = FeedClient(Subscription(), 1000)
    hub.attach(first)
    names = published(hub, 20, 3)
    got = drain(first)[:12]  # read 12, then the connection broke
    position = decode_position(got[-1]["position"])
    hub.detach(first)
    names += published(hub, 10, 3)
    second = FeedClient(Subscription(), 1000)
    plan = hub.attach(second, position)
    assert plan.source == "memory" and not plan.gaps and not plan.check_end
    replayed = [orjson.loads(second.frame_of(e))["data"]["id"] for e in plan.replay]
    names += published(hub, 4, 3)
    live = ids(drain(second))
    assert replayed + live == names[12:]


def test_resume_older_than_the_ring_reads_the_gap_from_the_topic() -> None:
    hub = hub_with(2, ring=6)
    published(hub, 20, 2)  # offsets 0..9 in each partition; the ring holds the last 3 of each
    plan = hub.attach(FeedClient(Subscription(), 100), (2, 5))
    assert plan.source == "topic"
    assert plan.gaps == {0: (2, 7), 1: (5, 7)}
    assert [(e.partition, e.offset) for e in plan.replay] == [
        (0, 7),
        (1, 7),
        (0, 8),
        (1, 8),
        (0, 9),
        (1, 9),
    ]


def test_resume_positions_never_go_below_where_the_client_was() -> None:
    hub = hub_with(2, ring=100)
    published(hub, 4, 2)  # partition 0: 0, 1; partition 1: 0, 1
    client = FeedClient(Subscription(), 100)
    plan = hub.attach(client, (1, 5))  # it had partition 1 up to 5 from a replica ahead of us
    assert plan.check_end  # 5 is past what this process has seen: checked against the topic
    assert [(e.partition, e.offset) for e in plan.replay] == [(0, 1)]
    assert decode_position(orjson.loads(client.frame_of(plan.replay[0]))["position"]) == (2, 5)
    for _ in range(4):
        publish(hub, 1, event("x", 0))  # offsets 2..5 of partition 1: 2, 3, 4 it had already
    publish(hub, 0, event("y", 0))
    messages = drain(client)
    assert [decode_position(m["position"]) for m in messages] == [(2, 6), (3, 6)]
    assert client.floor is None  # caught up: no more per-message work


@pytest.mark.parametrize(
    ("resume", "reason"),
    [((0,), "invalid"), ((0, 0, 0), "invalid"), ((0, 0), "too_old")],
)
def test_resumes_that_cannot_be_served_say_why(resume: tuple[int, ...], reason: str) -> None:
    hub = hub_with(2, ring=2, resume_max=5)
    published(hub, 20, 2)
    client = FeedClient(Subscription(), 10)
    plan = hub.attach(client, resume)
    assert plan.problem is not None and plan.problem[0] == reason
    assert plan.source == "none" and client.floor is None


def test_a_ring_of_size_zero_sends_every_resume_to_the_topic() -> None:
    hub = hub_with(1, ring=0)
    published(hub, 5, 1)
    plan = hub.attach(FeedClient(Subscription(), 10), (2,))
    assert plan.gaps == {0: (2, 5)} and plan.replay == []


# --- the consumer's record handling ------------------------------------------------------------


def record(partition: int, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        "scores", partition, offset, 0, 0, b"k", value, None, 1, len(value or b""), ()
    )


async def test_records_are_decoded_once_for_listeners_and_clients_and_bad_ones_skipped() -> None:
    feed = ScoreFeed(Settings(scores_topic="scores"))
    feed.hub.reset([0, 0])
    seen: list[dict[str, Any]] = []
    feed.add_listener(seen.append)

    def broken(event: dict[str, Any]) -> None:
        raise KeyError("a listener bug")

    feed.add_listener(broken)
    client = FeedClient(Subscription(), 10)
    feed.hub.attach(client)
    tp0, tp1 = TopicPartition("scores", 0), TopicPartition("scores", 1)
    await feed._handle({
        tp0: [record(0, 0, orjson.dumps(event("a", 1))), record(0, 1, b"{not json"), record(0, 2, None)],
        tp1: [record(1, 0, b'{"no_lead": 1}'), record(1, 1, orjson.dumps(event("b", 1)))],
    })  # fmt: skip
    assert [e["id"] for e in seen] == ["a-1", "b-1"]
    assert feed.listener_errors == 2
    assert feed.undecodable == 2  # the tombstone (None) is not counted as bad
    messages = drain(client)
    assert ids(messages) == ["a-1", "b-1"]
    assert feed.hub.vector() == (3, 2)  # skipped records still move the position
    assert feed.stats()["connected"] == 0


def test_score_entry_knows_its_data_and_the_position_before_it() -> None:
    hub = hub_with(2)
    client = FeedClient(Subscription(), 10)
    hub.attach(client)
    body = event("a", 1)
    publish(hub, 1, body)
    publish(hub, 1, body)
    entry: ScoreEntry = hub._ring[-1]
    assert orjson.loads(entry.data) == body
    assert entry.before() == (0, 1) and entry.vector == (0, 2)
