"""Loopback addresses for the embedded servers: a free port, and Kafka bootstrap lists."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now.

    Another process may take it before ours binds it; the embedded servers retry then.
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
