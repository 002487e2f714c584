"""Errors raised when the broker or Redis cannot be found, started or reached."""

from __future__ import annotations

from pathlib import Path


class InfraError(Exception):
    """Base of every error of ``leadscore.infra``."""


class BinaryNotFoundError(InfraError, FileNotFoundError):
    """A server binary (``tansu``, ``redis-server``) is not installed where expected."""


class ServiceError(InfraError):
    """A server did not come up or stopped answering.

    Attributes:
        service: what was being started or reached, e.g. ``"Kafka at 127.0.0.1:9092"``.
        log_path: the server's log file when we started it ourselves, else ``None``.
    """

    def __init__(self, message: str, *, service: str, log_path: Path | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.log_path = log_path


class ServiceExitedError(ServiceError):
    """A server process we started exited before it answered."""


class ServiceNotReadyError(ServiceError, TimeoutError):
    """A server did not answer within the timeout."""
