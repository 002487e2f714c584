"""Secrets kept in files under ``LEADSCORE_KEYS_DIR``, made on first start when missing.

Every process of a deployment (workers, API, CLI jobs) must use the same secrets: give
them in the environment, or share the keys directory the way the model directory is
shared. A file is written once, atomically (a temporary file linked into place), so two
processes starting together agree on one secret.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import lru_cache
from pathlib import Path

from leadscore.models.privacy.pseudonyms import pseudonym
from leadscore.settings import Settings

PSEUDONYM_FILE = "pseudonym.key"


class KeyFileError(RuntimeError):
    """A key file exists but cannot be used."""


def secret_file(path: Path, n_bytes: int = 32) -> bytes:
    """The secret in ``path`` (base64), made with ``n_bytes`` random bytes if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = base64.b64encode(secrets.token_bytes(n_bytes)) + b"\n"
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, fresh)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    text = path.read_text().strip()
    try:
        value = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise KeyFileError(f"{path} does not hold a base64 secret") from exc
    if len(value) < 16:
        raise KeyFileError(f"{path} holds {len(value)} bytes; a secret needs at least 16")
    return value


def pseudonym_secret(settings: Settings) -> bytes:
    """LEADSCORE_PSEUDONYM_SECRET, else the secret in ``keys_dir/pseudonym.key`` (made if missing)."""
    if settings.pseudonym_secret:
        return settings.pseudonym_secret.encode()
    return secret_file(settings.keys_dir / PSEUDONYM_FILE)


class LeadRefs:
    """What the records leadscore writes to Kafka call a lead: its pseudonym, or its id.

    ``table(lead_id)`` always gives the pseudonym (the worker's tables are keyed by it);
    ``topic(lead_id)`` gives the pseudonym unless LEADSCORE_TOPIC_LEAD_IDS is ``plain``.
    """

    def __init__(self, secret: bytes, *, plain_topics: bool = False) -> None:
        self.plain_topics = plain_topics
        self._of = lru_cache(maxsize=200_000)(lambda lead_id: pseudonym(secret, lead_id))

    @classmethod
    def from_settings(cls, settings: Settings) -> LeadRefs:
        return cls(pseudonym_secret(settings), plain_topics=settings.topic_lead_ids == "plain")

    def table(self, lead_id: str) -> str:
        return self._of(lead_id)

    def topic(self, lead_id: str) -> str:
        return lead_id if self.plain_topics else self._of(lead_id)
