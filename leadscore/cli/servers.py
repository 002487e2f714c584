"""``leadscore redis``: the embedded Redis as a durable server of its own, in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from leadscore.infra.embedded.servers import EmbeddedRedis

#: In the data directory: the port the server last listened on, taken again next time.
PORT_FILE = "leadscore-port"


def redis(
    data_dir: Path = typer.Option(
        ..., "--data-dir", help="where its data lives (an append-only file); created if missing"
    ),
    port: int | None = typer.Option(
        None, help="port on 127.0.0.1 (default: the one this directory used last, else a free one)"
    ),
) -> None:
    """Run the embedded redis-server in the foreground, keeping its data in DATA_DIR.

    Prints REDIS_URL=redis://127.0.0.1:PORT/0 on stdout once it answers; SIGTERM or Ctrl-C
    stops it. Every acknowledged write is in DATA_DIR's append-only file before the reply,
    so the same command on the same directory brings everything back after a stop, a
    crash or kill -9 (a machine crash may lose the last second).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    remembered = data_dir / PORT_FILE
    if port is None and remembered.is_file():
        port = int(remembered.read_text().strip() or 0) or None
    server = EmbeddedRedis(durable=True, port=port, workdir=data_dir)
    try:
        server.start()
    except Exception as exc:  # no binary, port taken, exited: say why and stop
        typer.secho(f"redis-server did not start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    remembered.write_text(f"{server.port}\n")
    typer.echo(f"REDIS_URL={server.url}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not server.running:
            typer.secho(
                f"redis-server exited by itself; its log: {server.log_path}",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(1)
    server.stop()
