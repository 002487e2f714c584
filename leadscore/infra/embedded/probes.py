"""Readiness probes: wait until a Kafka broker or a Redis server answers, ours or not."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import redis

# aiokafka ships no type information (no py.typed, no stubs)
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from leadscore.infra.embedded.addresses import split_bootstrap
from leadscore.infra.errors import ServiceExitedError, ServiceNotReadyError

_POLL_INTERVAL_S = 0.01
_PROBE_TIMEOUT_S = 2.0  # longest single attempt; the whole wait is bounded by timeout_s
_LOG_TAIL_LINES = 20

_T = TypeVar("_T")


class _NotReadyYet(Exception):
    """A probe found the server not answering (yet); the reason is the message."""


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until a broker of ``bootstrap`` answers a Kafka metadata request.

    Works for any broker reachable over PLAINTEXT, ours or not. Safe to call while an
    event loop runs in this thread (the probe runs on its own loop in a worker thread).

    Raises:
        ServiceNotReadyError: no broker answered within ``timeout_s``.
        ValueError: ``bootstrap`` is not ``host:port[,host:port...]``.
    """
    split_bootstrap(bootstrap)  # fail now on a malformed address, not after the timeout
    probe = functools.partial(probe_kafka, bootstrap)
    wait_until_ready(probe, f"Kafka at {bootstrap}", timeout_s)


def wait_for_redis(url: str, timeout_s: float = 30.0) -> None:
    """Block until the Redis server at ``url`` answers PING.

    Raises:
        ServiceNotReadyError: it did not answer within ``timeout_s``.
        redis.AuthenticationError: it answered but refused our credentials (waiting won't help).
    """
    wait_until_ready(functools.partial(probe_redis, url), f"Redis at {url}", timeout_s)


def probe_kafka(bootstrap: str, timeout_s: float) -> None:
    """One attempt of :func:`wait_for_kafka`: some broker of ``bootstrap`` lists a broker.

    A failure is raised for :func:`wait_until_ready`, which tries again.
    """
    failures = []
    for host, port in split_bootstrap(bootstrap):
        try:
            brokers = _run_on_fresh_loop(_fetch_brokers(host, port, timeout_s))
        except (TimeoutError, OSError, KafkaError) as exc:
            failures.append(f"{host}:{port}: {exc!r}")
            continue
        if brokers:
            return
        failures.append(f"{host}:{port}: metadata lists no broker")
    raise _NotReadyYet("; ".join(failures))


async def _fetch_brokers(host: str, port: int, timeout_s: float) -> list[Any]:
    """One ApiVersions + Metadata round trip; the brokers the metadata lists."""
    connecting = create_conn(host, port, request_timeout_ms=int(timeout_s * 1000))
    conn = await asyncio.wait_for(connecting, timeout_s)
    try:
        response = await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
    finally:
        conn.close()
    return list(response.brokers)


def _run_on_fresh_loop(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a new event loop in a worker thread, whatever runs in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def probe_redis(url: str, timeout_s: float) -> None:
    """One attempt of :func:`wait_for_redis`: a PING.

    A failure is raised for :func:`wait_until_ready`, which tries again; refused credentials
    are raised as they are.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.AuthenticationError:
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise _NotReadyYet(repr(exc)) from exc
    finally:
        client.close()


def probe_http(url: str, timeout_s: float) -> None:
    """One attempt: an HTTP GET of ``url`` gets an answer, whatever its status."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s):  # our own loopback URL
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as exc:
        raise _NotReadyYet(repr(exc)) from exc


def wait_until_ready(
    probe: Callable[[float], None],
    service: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    attempt_timeout_s: float = _PROBE_TIMEOUT_S,
) -> None:
    """Call ``probe(attempt_timeout_s)`` until it passes; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe(min(attempt_timeout_s, max(deadline - time.monotonic(), _POLL_INTERVAL_S)))
            last_failure = None
        except _NotReadyYet as exc:
            last_failure = str(exc)
        # Checked after a passing probe too: if our server lost its port to another
        # server, that one answered and ours exited.
        if process is not None and process.poll() is not None:
            raise ServiceExitedError(
                f"{service} exited with code {process.returncode} before it answered"
                f"{_log_excerpt(log_path)}",
                service=service,
                log_path=log_path,
            )
        if last_failure is None:
            return
        if time.monotonic() >= deadline:
            raise ServiceNotReadyError(
                f"{service} did not answer within {timeout_s:g} s; last error: {last_failure}"
                f"{_log_excerpt(log_path)}",
                service=service,
                log_path=log_path,
            )
        time.sleep(_POLL_INTERVAL_S)


def _log_excerpt(log_path: Path | None) -> str:
    if log_path is None:
        return ""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    except OSError as exc:
        return f"\n(log {log_path} unreadable: {exc})"
    return f"\nlast lines of {log_path}:\n" + "\n".join(f"  | {line}" for line in lines)
