"""Dead letters sealed with keys that erasure and expiry destroy (docs/privacy.md).

A dead letter keeps the refused record whole, so whoever fixes the producer can see what
was wrong: personal data included. Its raw key and value, and the reason (which may quote
a value of the record), are sealed (AES-256-GCM) with a
key kept in Redis under ``P dlkey:<ref>``: one per lead (``ref`` is the pseudonym of the
record's Kafka key) and one, ``-``, for records without a key. A key lives
``LEADSCORE_DEAD_LETTER_RETENTION_DAYS`` from its first use; when it expires, or when the
lead is erased (which deletes its key), the letters it sealed can no longer be read, on
any broker, whatever the topic's retention does.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadscore.schemas.scores import DeadLetter

NO_LEAD = "-"


def key_name(prefix: str, ref: str) -> str:
    return f"{prefix}dlkey:{ref}"


class DeadLetterKeys:
    """Seals and opens dead letters (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, prefix: str, retention_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_s = max(1, int(retention_s))

    async def _keys(self, refs: set[str], *, create: bool) -> dict[str, bytes]:
        names = sorted(refs)
        pipe = self.client.pipeline(transaction=False)
        if create:
            for ref in names:
                pipe.set(key_name(self.prefix, ref), os.urandom(32), nx=True, ex=self.retention_s)
        pipe.mget([key_name(self.prefix, ref) for ref in names])
        values = (await pipe.execute())[-1]
        return {ref: value for ref, value in zip(names, values) if value is not None}

    async def seal(self, letters: Sequence[tuple[str, DeadLetter]]) -> list[DeadLetter]:
        """The letters with their raw key and value sealed; ``letters``: (ref, letter)."""
        if not letters:
            return []
        keys = await self._keys({ref for ref, _ in letters}, create=True)
        out = []
        for ref, letter in letters:
            aead = AESGCM(keys[ref])
            out.append(
                letter.model_copy(
                    update={
                        "key_b64": _seal(aead, letter.key_b64, ref),
                        "value_b64": _seal(aead, letter.value_b64, ref),
                        # the message may quote the record (e.g. a value that failed)
                        "reason": _seal(aead, _b64(letter.reason), ref),
                        "sealed": f"dlkey:{ref}",
                    }
                )
            )
        return out

    async def open(self, letters: Sequence[DeadLetter]) -> list[DeadLetter | None]:
        """The letters as they were refused; ``None`` where the key expired or was erased."""
        refs = {letter.sealed.removeprefix("dlkey:") for letter in letters if letter.sealed}
        keys = await self._keys(refs, create=False) if refs else {}
        out: list[DeadLetter | None] = []
        for letter in letters:
            if not letter.sealed:
                out.append(letter)
                continue
            ref = letter.sealed.removeprefix("dlkey:")
            key = keys.get(ref)
            if key is None:
                out.append(None)
                continue
            try:
                aead = AESGCM(key)
                update: dict[str, Any] = {
                    "key_b64": _open(aead, letter.key_b64, ref),
                    "value_b64": _open(aead, letter.value_b64, ref),
                    "reason": base64.b64decode(_open(aead, letter.reason, ref) or "").decode(),
                    "sealed": None,
                }
            except (InvalidTag, ValueError):
                out.append(None)
                continue
            out.append(letter.model_copy(update=update))
        return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _seal(aead: AESGCM, b64: str | None, ref: str) -> str | None:
    if b64 is None:
        return None
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, base64.b64decode(b64), ref.encode())
    return base64.b64encode(nonce + sealed).decode()


def _open(aead: AESGCM, b64: str | None, ref: str) -> str | None:
    if b64 is None:
        return None
    blob = base64.b64decode(b64)
    return base64.b64encode(aead.decrypt(blob[:12], blob[12:], ref.encode())).decode()
