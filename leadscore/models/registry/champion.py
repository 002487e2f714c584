"""The champion pointers of a registry: which version each segment serves, its history and log."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadscore.models.registry.errors import RegistryError
from leadscore.models.registry.files import fsync, write_text

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ChampionPointers:
    """The champion pointer files of a registry directory, one per segment.

    ``champion.json`` is the default segment's, ``champion.<segment>.json`` another's. Each
    holds the champion version, when it was promoted, the champions before it (for
    :meth:`rollback`) and a log of every promote and rollback. Changes hold an exclusive
    file lock; a pointer is replaced atomically.

    Args:
        root: the registry directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, segment: str | None) -> dict[str, Any] | None:
        """The pointer of ``segment`` (default segment if None), or ``None`` if it has none."""
        path = self.path(segment)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: champion pointer is not valid JSON: {exc}") from exc
        return data

    def promote(self, version: str, segment: str | None) -> None:
        """Make ``version`` the champion of ``segment``; the current one goes to the history."""
        with self._lock():
            pointer = self.read(segment) or {"version": None, "history": [], "log": []}
            if pointer["version"] == version:
                return
            if pointer["version"] is not None:
                pointer["history"].append(
                    {"version": pointer["version"], "promoted_at": pointer["promoted_at"]}
                )
            now = _now_iso()
            pointer.update(version=version, promoted_at=now)
            pointer["log"].append({"action": "promote", "version": version, "at": now})
            self._write(segment, pointer)

    def rollback(self, segment: str | None) -> str:
        """Restore the previous champion of ``segment`` and return its version.

        Raises:
            RegistryError: there is no previous champion.
        """
        with self._lock():
            pointer = self.read(segment)
            if pointer is None or not pointer["history"]:
                raise RegistryError(f"no previous champion to roll back to in {self.path(segment)}")
            previous = pointer["history"].pop()
            now = _now_iso()
            pointer["log"].append(
                {
                    "action": "rollback",
                    "version": previous["version"],
                    "from": pointer["version"],
                    "at": now,
                }
            )
            pointer.update(version=previous["version"], promoted_at=now)
            self._write(segment, pointer)
            return str(previous["version"])

    def history(self, segment: str | None) -> list[dict[str, Any]]:
        """Every promote and rollback of ``segment``, oldest first."""
        pointer = self.read(segment)
        return list(pointer["log"]) if pointer is not None else []

    def path(self, segment: str | None) -> Path:
        """The pointer file of ``segment``.

        Raises:
            ValueError: ``segment`` is not a valid segment name.
        """
        if segment is None:
            return self.root / "champion.json"
        if not _SEGMENT_RE.match(segment):
            raise ValueError(f"segment must match {_SEGMENT_RE.pattern}, got {segment!r}")
        return self.root / f"champion.{segment}.json"

    def _write(self, segment: str | None, pointer: dict[str, Any]) -> None:
        path = self.path(segment)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        write_text(tmp, json.dumps(pointer, indent=2))
        os.replace(tmp, path)  # atomic: readers see the old or the new pointer
        fsync(self.root)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
