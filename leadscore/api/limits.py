"""Request limits: the body cap (413 before anything parses it), per-key rate limits (429),
and what no path may hold (control characters).

A plain ASGI middleware, outside every route: a ``Content-Length`` over the limit is
refused at once, without reading a byte; a body sent without one (chunked) is counted as
it arrives and refused the moment it passes the limit. File uploads
(``POST /v1/score/batch/file``) have their own, larger limit
(``LEADSCORE_API_MAX_UPLOAD_BYTES``); every other route has ``LEADSCORE_API_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadscore.api.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Control characters: no URL path, route or file name leadscore serves or reads holds one.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")

#: Routes whose body is a file upload, and the multipart framing allowed around the file.
UPLOAD_PATHS = frozenset({"/v1/score/batch/file"})
MULTIPART_SLACK = 64 * 1024


class BodyLimit:
    """413 ``body_too_large`` for a request body over its route's limit (see the module notes).

    Args:
        app: the ASGI app inside.
        max_body_bytes: the limit of every route but the uploads.
        max_upload_bytes: the limit of a file upload (the multipart framing is allowed on top).
    """

    def __init__(self, app: Any, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit(self, path: str) -> tuple[int, str]:
        if path in UPLOAD_PATHS:
            return self.max_upload_bytes + MULTIPART_SLACK, "LEADSCORE_API_MAX_UPLOAD_BYTES"
        return self.max_body_bytes, "LEADSCORE_API_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit, setting)
            return
        seen = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not refused:
                    refused = True
                    if not started:
                        await _too_large(send, limit, setting)
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; nothing the app says after it is sent
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int, setting: str) -> None:
    message = f"the request body is over {limit:,} bytes ({setting}); send less per request"
    await send_error(send, 413, "body_too_large", message, close=True)


async def send_error(
    send: Send, status: int, code: str, message: str, *, close: bool = False
) -> None:
    """Answer with the API's JSON error body from ASGI middleware, before any route runs.

    ``close``: ask the client to close the connection (a body it is still sending is
    not read).
    """
    body = orjson.dumps(error_body(code, message))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class RateLimiter:
    """Requests per second per API key, in this process: a token bucket per key.

    Each key may send ``rate`` requests a second on average and ``burst`` at once; past
    that a request waits for :meth:`retry_after` seconds. ``rate`` 0 turns it off. The
    buckets live in the API process, so with several processes (uvicorn workers,
    replicas) a key may send ``rate`` to each.

    Examples:
        >>> now = [0.0]
        >>> limiter = RateLimiter(rate=2.0, burst=2.0, clock=lambda: now[0])
        >>> [limiter.retry_after("k") for _ in range(3)]
        [0.0, 0.0, 0.5]
        >>> now[0] = 0.5
        >>> limiter.retry_after("k"), limiter.retry_after("other")
        (0.0, 0.0)
    """

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    buckets_: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, at

    def retry_after(self, key_id: str) -> float:
        """0 and a token taken when ``key_id`` may go now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self.buckets_.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self.buckets_[key_id] = (tokens - 1.0, now)
            return 0.0
        self.buckets_[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (HTTP allows no fraction), at least 1."""
    return str(max(1, math.ceil(seconds)))
