"""The WebSocket endpoint ``/v1/stream``: score events of ``leads.scores.v1``, live to clients.

Each connection has its own sender task, the only writer of its socket: it sends the
``hello``, what a resuming client missed (read back from the topic, then from the
fan-out's ring), then the events the :class:`~leadscore.api.websocket.feed.ScoreFeed` put in
the client's queue. A receiver task handles the client's ``subscribe`` and ``ping``.
The fan-out is in ``hub``, the consumer in ``feed``; the message protocol
is in ``docs/websocket.md``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from leadscore.api.auth import authenticate
from leadscore.api.errors import ApiError
from leadscore.api.websocket.feed import FeedTopicMissingError, ScoreFeed
from leadscore.api.websocket.hub import FeedClient, FeedFullError, ResumePlan
from leadscore.api.websocket.protocol import (
    StreamRequestError,
    Subscription,
    decode_position,
    elementwise_max,
    encode_position,
    make_entry,
)
from leadscore.api.websocket.read_back import ResumeTooOldError
from leadscore.infra.kafka.offsets import EndOffsetProbeError
from leadscore.infra.privacy.lead_ids import decode_score

# ScoreFeed is re-exported: app.py builds the feed as ``stream.ScoreFeed``.
__all__ = [
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_TRY_AGAIN_LATER",
    "PROTOCOL_VERSION",
    "ScoreFeed",
    "StreamRequest",
    "router",
    "stream",
]

log = logging.getLogger(__name__)

router = APIRouter(tags=["stream"])

#: Version of the message protocol, sent in ``hello``; bumped on an incompatible change.
PROTOCOL_VERSION = 1
#: Close codes (RFC 6455): refused by policy (no key, bad request) / try again later.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
#: Longest a connection waits for the feed's first positioning before it is refused.
_READY_WAIT_S = 10.0


# --- the WebSocket endpoint --------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRequest:
    """What a client asked for in its URL: ``?leads=a,b&grades_only=true&resume=<position>``."""

    subscription: Subscription
    resume: tuple[int, ...] | None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StreamRequest:
        """Parse the query parameters of ``/v1/stream``.

        Raises:
            StreamRequestError: a parameter is malformed (the message says which).

        Examples:
            >>> StreamRequest.from_query({"leads": "l1", "resume": "v1.0.a"}).resume
            (0, 10)
        """
        subscription = Subscription.parse(query.get("leads"), query.get("grades_only"))
        resume_text = query.get("resume")
        resume = decode_position(resume_text) if resume_text else None
        return cls(subscription, resume)


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """Live score events; protocol in ``docs/websocket.md``. Needs a key with scope ``read``."""
    await websocket.accept()
    feed: ScoreFeed = websocket.app.state.ctx.feed
    try:
        key = await authenticate(websocket, "read")
    except ApiError as exc:
        await _refuse(websocket, CLOSE_POLICY_VIOLATION, exc.code, exc.message)
        return
    try:
        request = StreamRequest.from_query(websocket.query_params)
    except StreamRequestError as exc:
        await _refuse(websocket, CLOSE_POLICY_VIOLATION, exc.code, exc.message)
        return
    if not feed.positioned.is_set():
        try:
            await asyncio.wait_for(feed.positioned.wait(), _READY_WAIT_S)
        except TimeoutError:
            await _refuse(
                websocket,
                CLOSE_TRY_AGAIN_LATER,
                "feed_unavailable",
                "this API process is not connected to the broker yet; retry shortly",
            )
            return
    client = FeedClient(request.subscription, feed.settings.ws_queue_size, key.name)
    try:
        plan = feed.hub.attach(client, request.resume)
    except FeedFullError as exc:
        await _refuse(websocket, CLOSE_TRY_AGAIN_LATER, "too_many_connections", str(exc))
        return
    if feed.interrupted_since is not None:
        client.say(feed.interruption())  # sent right after hello
    sender = asyncio.create_task(_send(websocket, feed, client, plan), name="ws-send")
    receiver = asyncio.create_task(_receive(websocket, feed, client), name="ws-receive")
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a bug in either surfaces here (and in the log)
    finally:
        feed.hub.detach(client)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    """Tell the client why in an ``error`` message, then close with ``code``."""
    try:
        await websocket.send_text(
            orjson.dumps({"type": "error", "code": error, "message": message}).decode()
        )
        await websocket.close(code, reason=error[:120])
    except (WebSocketDisconnect, WebSocketDisconnected):
        pass  # it left first: nothing to tell


def _hello(feed: ScoreFeed, client: FeedClient, plan: ResumePlan) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "topic": feed.topic,
        "position": encode_position(plan.position),
        "subscription": client.subscription.describe(),
        "resume": encode_position(plan.resume) if plan.resume is not None else None,
        "replay": plan.source,
        "queue_size": client.queue_size,
        "drop_policy": "drop-oldest",
    }


async def _send(
    websocket: WebSocket, feed: ScoreFeed, client: FeedClient, plan: ResumePlan
) -> None:
    """The connection's only writer: hello, what it missed, then live events as they come."""
    try:
        await websocket.send_text(orjson.dumps(_hello(feed, client, plan)).decode())
        if plan.resume is not None:
            await _replay(websocket, feed, client, plan)
        while True:
            frames = client.take()
            if not frames:
                if client.closed:
                    return
                await client.wait()
                continue
            for frame in frames:
                await websocket.send_text(frame)
            client.sent += len(frames)
            feed.delivered += len(frames)
    except (WebSocketDisconnect, WebSocketDisconnected):
        return


async def _replay(
    websocket: WebSocket, feed: ScoreFeed, client: FeedClient, plan: ResumePlan
) -> None:
    """Send what a resuming client missed (topic read-back, then the ring), or say why not."""
    resume = plan.resume
    if resume is None:
        return
    hub = feed.hub
    if plan.problem is None and plan.check_end:
        try:
            end = feed.known_end()
            if any(r > e for r, e in zip(resume, end)):
                end = await feed.end_offsets()
            if any(r > e for r, e in zip(resume, end)):
                plan.problem = (
                    "invalid",
                    "the position is past the end of the topic: it is from "
                    "another deployment, or the topic was recreated",
                )
        except (
            KafkaError,
            OSError,
            TimeoutError,
            EndOffsetProbeError,
            FeedTopicMissingError,
        ) as exc:
            plan.problem = (
                "unavailable",
                f"the broker could not be asked for the topic's end ({exc!r})",
            )
    sent = 0
    if plan.problem is None and plan.gaps:
        vector = list(resume)
        try:
            async with aclosing(feed.read_back(plan.gaps)) as records:
                async for partition, record in records:
                    vector[partition] = record.offset + 1
                    seen = decode_score(record.value)
                    event = await feed.readable(seen)
                    if event is None or record.value is None:
                        continue  # not a score event, or its lead was erased since
                    # the same object when the topic named the lead as the client sees it
                    raw = record.value if event is seen else orjson.dumps(event)
                    entry = make_entry(partition, record.offset, tuple(vector), raw, event)
                    if client.subscription.matches(entry):
                        await websocket.send_text(entry.frame)
                        sent += 1
        except ResumeTooOldError as exc:
            plan.problem = ("too_old", str(exc))
        except (KafkaError, OSError, TimeoutError, EndOffsetProbeError) as exc:
            plan.problem = ("unavailable", f"reading the topic back failed ({exc!r})")
    if plan.problem is not None:
        hub.resumes["failed"] += 1
        hub.give_up_resume(client, plan)
        reason, why = plan.problem
        now = encode_position(hub.vector())
        await websocket.send_text(orjson.dumps({
            "type": "resume_failed",
            "reason": reason,
            "position": now,
            "message": f"cannot resume from {encode_position(resume)}: {why}. Events you missed "
            "are not coming: refetch the scores you show with GET /v1/leads/{lead_id}/score (or "
            "the leaderboard); live events follow from here",
        }).decode())  # fmt: skip
        log.info("stream resume for %s failed (%s): %s", client.name, reason, why)
        return
    for entry in plan.replay:
        if client.subscription.matches(entry):
            await websocket.send_text(client.frame_of(entry))
            sent += 1
    hub.resumes[plan.source] += 1
    client.sent += sent
    feed.delivered += sent
    await websocket.send_text(orjson.dumps({
        "type": "resumed",
        "source": plan.source,
        "count": sent,
        "position": encode_position(elementwise_max(resume, plan.position)),
    }).decode())  # fmt: skip


async def _receive(websocket: WebSocket, feed: ScoreFeed, client: FeedClient) -> None:
    """Read the client's messages: ``subscribe`` changes its filter, ``ping`` gets ``pong``."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode(errors="replace")
        try:
            _on_client_message(feed, client, text)
        except StreamRequestError as exc:
            client.say({"type": "error", "code": exc.code, "message": exc.message})


def _on_client_message(feed: ScoreFeed, client: FeedClient, text: str) -> None:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StreamRequestError("invalid_message", "messages must be JSON objects") from None
    if not isinstance(body, dict):
        raise StreamRequestError("invalid_message", "messages must be JSON objects")
    kind = body.get("type")
    if kind == "subscribe":
        subscription = Subscription.parse(body.get("leads"), body.get("grades_only"))
        feed.hub.resubscribe(client, subscription)
        client.say(
            {
                "type": "subscribed",
                "subscription": subscription.describe(),
                "position": encode_position(feed.hub.vector()),
            }
        )
    elif kind == "ping":
        client.say({"type": "pong", "position": encode_position(feed.hub.vector())})
    else:
        raise StreamRequestError(
            "invalid_message", f"unknown message type {kind!r}: send 'subscribe' or 'ping'"
        )
