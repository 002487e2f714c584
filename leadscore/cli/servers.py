"""``leadscore broker`` and ``leadscore redis``: the embedded servers, durable, in the foreground."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import typer

from leadscore.infra.embedded.durable import DurableKafka, remember_port, remembered_port
from leadscore.infra.embedded.servers import EmbeddedRedis

_DATA_DIR_HELP = "where its data lives; created if missing"
_PORT_HELP = "port on 127.0.0.1 (default: the one this directory used last, else a free one)"


def broker(
    data_dir: Path = typer.Option(..., "--data-dir", help=_DATA_DIR_HELP),
    port: int | None = typer.Option(None, help=_PORT_HELP),
) -> None:
    """Run the embedded Kafka-compatible broker in the foreground, keeping its data in DATA_DIR.

    Prints KAFKA_BOOTSTRAP=127.0.0.1:PORT on stdout once it answers; SIGTERM or Ctrl-C
    stops it. Tansu stores every topic, acknowledged record and committed offset through
    s3rver (Node.js) as files in DATA_DIR, so the same command on the same directory brings
    them all back after a stop, a crash or kill -9.
    """
    server = DurableKafka(data_dir, port=remembered_port(data_dir, port))
    _run_in_foreground(
        "the broker", server.start, server.stop, server.exited, data_dir,
        lambda: (server.port, f"KAFKA_BOOTSTRAP={server.bootstrap}"),
    )  # fmt: skip


def redis(
    data_dir: Path = typer.Option(..., "--data-dir", help=_DATA_DIR_HELP),
    port: int | None = typer.Option(None, help=_PORT_HELP),
) -> None:
    """Run the embedded redis-server in the foreground, keeping its data in DATA_DIR.

    Prints REDIS_URL=redis://127.0.0.1:PORT/0 on stdout once it answers; SIGTERM or Ctrl-C
    stops it. Every acknowledged write is in DATA_DIR's append-only file before the reply,
    so the same command on the same directory brings everything back after a stop, a
    crash or kill -9 (a machine crash may lose the last second).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(durable=True, port=remembered_port(data_dir, port), workdir=data_dir)
    _run_in_foreground(
        "redis-server", server.start, server.stop, server.exited, data_dir,
        lambda: (server.port, f"REDIS_URL={server.url}"),
    )  # fmt: skip


def _run_in_foreground(
    what: str,
    start: Callable[[], None],
    stop: Callable[[], None],
    exited: Callable[[], str | None],
    data_dir: Path,
    address: Callable[[], tuple[int, str]],
) -> None:
    """Start, remember the port, print the address line, wait for a signal or an exit, stop."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        start()
    except Exception as exc:  # no binary, port taken, exited: say why and stop
        typer.secho(f"{what} did not start: {exc}", fg=typer.colors.RED, err=True)
        stop()
        raise typer.Exit(1) from exc
    port, line = address()
    remember_port(data_dir, port)
    typer.echo(line)
    try:
        while not stopping.wait(0.5):
            gone = exited()
            if gone is not None:
                typer.secho(f"{gone} exited by itself", fg=typer.colors.RED, err=True)
                raise typer.Exit(1)
    finally:
        stop()
