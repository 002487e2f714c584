"""A real HTTP receiver for webhook tests: a threaded ``http.server`` on 127.0.0.1.

It runs in its own threads, so it answers whatever the test's event loop is doing, and it
can go down (connections refused) and come back on the same port.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook


@dataclass(frozen=True)
class Request:
    """One request the receiver got, and the status it answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    path: str

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers["webhook-id"]

    def payload(self) -> dict[str, Any]:
        """The body as JSON (not verified)."""
        return orjson.loads(self.body)

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, verified with the stock ``standardwebhooks`` package (raises if not)."""
        result: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return result


class Receiver:
    """Records every request and answers ``status`` (200 unless the test changes it)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.status = 200
        self.delay_s = 0.0  # wait this long before answering
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The URL to subscribe."""
        return f"http://127.0.0.1:{self.port}/hooks/leadscore"

    def requests(self) -> list[Request]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def start(self) -> None:
        """Listen on :attr:`port` (again), answering :attr:`status`."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.status
                time.sleep(receiver.delay_s)
                with receiver._lock:
                    receiver._requests.append(
                        Request(
                            {k.lower(): v for k, v in self.headers.items()}, body, status, self.path
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        deadline = time.monotonic() + 10
        while True:
            try:
                server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:  # the old socket is still closing
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Go down: new connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
