"""BodyLimit: a body over its route's limit is a 413 before the app reads it whole."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from leadscore.api.limits import MULTIPART_SLACK, BodyLimit


class Echo:
    """An app that reads the whole body and answers its length (what a route would parse)."""

    def __init__(self) -> None:
        self.read: int | None = None
        self.disconnected = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.read = len(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})


def call(
    path: str, chunks: list[bytes], content_length: int | None = None
) -> tuple[Echo, list[dict[str, Any]], int]:
    """Run one request through BodyLimit(limit 1000, uploads 5000); (app, sent, chunks read)."""
    inner = Echo()
    app = BodyLimit(inner, max_body_bytes=1000, max_upload_bytes=5000)
    headers = [] if content_length is None else [(b"content-length", b"%d" % content_length)]
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return inner, sent, len(chunks) - len(pending)


def status_and_error(sent: list[dict[str, Any]]) -> tuple[int, str | None]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    error = orjson.loads(body)["error"]["code"] if body.startswith(b"{") else None
    return sent[0]["status"], error


def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte() -> None:
    inner, sent, read = call("/v1/score", [b"x" * 2000], content_length=2000)
    assert status_and_error(sent) == (413, "body_too_large") and read == 0 and inner.read is None
    message = orjson.loads(sent[1]["body"])["error"]["message"]
    assert "1,000 bytes" in message and "LEADSCORE_API_MAX_BODY_BYTES" in message


def test_a_body_without_a_length_is_cut_off_when_it_passes_the_limit() -> None:
    inner, sent, read = call("/v1/score/batch", [b"x" * 400] * 10)
    assert status_and_error(sent) == (413, "body_too_large")
    assert read == 3 and inner.read is None and inner.disconnected  # 1,200 bytes: stop there
    assert len(sent) == 2  # only the 413: nothing the app said after it


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    inner, sent, _ = call("/v1/score", [b"x" * 500, b"x" * 500], content_length=1000)
    assert sent[0]["status"] == 200 and inner.read == 1000


def test_file_uploads_have_their_own_limit_with_room_for_the_multipart_framing() -> None:
    size = 5000 + MULTIPART_SLACK
    inner, sent, _ = call("/v1/score/batch/file", [b"x" * size], content_length=size)
    assert sent[0]["status"] == 200 and inner.read == size
    _, sent, _ = call("/v1/score/batch/file", [b"x" * (size + 1)], content_length=size + 1)
    assert status_and_error(sent) == (413, "body_too_large")
    assert "LEADSCORE_API_MAX_UPLOAD_BYTES" in orjson.loads(sent[1]["body"])["error"]["message"]
