"""Dead letters sealed with keys that expiry and erasure destroy (docs/privacy.md).

A dead letter keeps the refused record whole, so whoever fixes the producer can see what
was wrong: personal data included. Its raw key and value, and the reason (which may quote
a value of the record), are sealed (AES-256-GCM) with a key kept in Redis under
``P dlkey:<day>:<ref>``: one per UTC day and lead (``ref`` is the pseudonym of the
record's Kafka key), and one per day, ``-``, for records without a key. The key is made
on first use (``SET NX``) and lives ``LEADSCORE_DEAD_LETTER_RETENTION_DAYS``; in Redis it
is itself sealed with the data keys (:mod:`leadscore.infra.privacy.crypto`), so a copy of
Redis alone opens nothing. When it expires, the letters of that day and lead can no longer
be read, on any broker, whatever the topic's retention does (the embedded broker applies
none); when the lead is erased, :func:`forget_dead_letter_keys` deletes its keys of every day.

A letter stays readable for at most the retention, and at least the retention less one
day (the day's key is made by its first letter). ``P dlkey-days`` lists the days that may
still have keys (score: when their last key expires at the latest), so erasure deletes a
few known names instead of scanning Redis. Letters sealed before keys were per day name
``dlkey:<ref>``; they open, and erasure deletes those keys too.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from leadscore.infra.privacy.crypto import Keyring, KeyringError
from leadscore.infra.privacy.keys import LeadRefs
from leadscore.schemas.scores import DeadLetter

NO_LEAD = "-"
DAYS_INDEX = "dlkey-days"
DEAD_LETTER_KEY_BYTES = 32  # a key kept as it is; sealed with a data key it is longer


def day_key_name(day: str, ref: str) -> str:
    """The key's name under the Redis prefix, as the letter's ``sealed`` field holds it."""
    return f"dlkey:{day}:{ref}"


def ref_of(letter: DeadLetter) -> str | None:
    """The pseudonym a sealed letter belongs to (``None``: not sealed, or no lead)."""
    if not letter.sealed:
        return None
    ref = letter.sealed.rsplit(":", 1)[-1]
    return None if ref == NO_LEAD else ref


class DeadLetterKeys:
    """Seals and opens dead letters (see the module docstring).

    Args:
        client: Redis.
        prefix: the Redis key prefix.
        retention_s: how long a day's key lives.
        keyring: seals the keys in Redis (``None``: kept as they are, readable to anyone
            who reads Redis; only for tests and tools without the data keys).
        refs: the lead pseudonyms, for :meth:`seal_batch`.
        clock: epoch seconds now (tests move it).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        retention_s: float,
        *,
        keyring: Keyring | None = None,
        refs: LeadRefs | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.retention_s = max(1, int(retention_s))
        self.keyring = keyring
        self.refs = refs
        self.clock = clock

    async def seal_batch(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """The letters with their raw key, value and reason sealed, in one Redis round trip.

        Each letter's ``sealed`` names its key (``dlkey:<day>:<ref>``); :func:`ref_of`
        gives the pseudonym to key the letter with on the topic.
        """
        if self.refs is None:
            raise ValueError("DeadLetterKeys.seal_batch needs refs= (the lead pseudonyms)")
        refs = self.refs
        return await self.seal([(self._ref(refs, letter), letter) for letter in letters])

    @staticmethod
    def _ref(refs: LeadRefs, letter: DeadLetter) -> str:
        if letter.key_b64 is None:
            return NO_LEAD
        return refs.table(base64.b64decode(letter.key_b64).decode(errors="replace"))

    async def seal(self, letters: Sequence[tuple[str, DeadLetter]]) -> list[DeadLetter]:
        """Like :meth:`seal_batch`, with the ref of each letter given: (ref, letter)."""
        if not letters:
            return []
        day = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        names = sorted({day_key_name(day, ref) for ref, _ in letters})
        keys = await self._get_or_make(day, names)
        out = []
        for ref, letter in letters:
            name = day_key_name(day, ref)
            aead = AESGCM(keys[name])
            out.append(
                letter.model_copy(
                    update={
                        "key_b64": _seal(aead, letter.key_b64, ref),
                        "value_b64": _seal(aead, letter.value_b64, ref),
                        # the message may quote the record (e.g. a value that failed)
                        "reason": _seal(aead, _b64(letter.reason), ref),
                        "sealed": name,
                    }
                )
            )
        return out

    async def _get_or_make(self, day: str, names: list[str]) -> dict[str, bytes]:
        """The key of each name, made where missing; atomic, so that two workers sealing
        the same lead's letters at once agree on one key."""
        now = self.clock()
        pipe = self.client.pipeline(transaction=True)
        for name in names:
            fresh = self._wrap(os.urandom(DEAD_LETTER_KEY_BYTES), name)
            pipe.set(self.prefix + name, fresh, nx=True, ex=self.retention_s)
            pipe.get(self.prefix + name)
        index = self.prefix + DAYS_INDEX
        pipe.zadd(index, {day: now + self.retention_s}, gt=True)  # adds it, or moves it later
        pipe.zremrangebyscore(index, "-inf", now)  # days whose keys have all expired
        stored = (await pipe.execute())[1 : 2 * len(names) : 2]
        return {name: self._unwrap(value, name) for name, value in zip(names, stored, strict=True)}

    def _wrap(self, key: bytes, name: str) -> bytes:
        return key if self.keyring is None else self.keyring.seal(key, name.encode())

    def _unwrap(self, stored: bytes, name: str) -> bytes:
        if len(stored) == DEAD_LETTER_KEY_BYTES:
            return stored
        if self.keyring is None:
            raise KeyringError(
                f"dead-letter key {name} is sealed with data key {Keyring.key_id_of(stored)!r}; "
                "open it with the data keys (LEADSCORE_DATA_KEYS or keys_dir/data.keys)"
            )
        return self.keyring.open(stored, name.encode())

    async def open(self, letters: Sequence[DeadLetter]) -> list[DeadLetter | None]:
        """The letters as they were refused; ``None`` where the key expired or was erased.

        Raises:
            KeyringError: a key is sealed with a data key this process is not given.
        """
        names = sorted({letter.sealed for letter in letters if letter.sealed})
        values = await self.client.mget([self.prefix + n for n in names]) if names else []
        keys = {
            name: self._unwrap(cast(bytes, value), name)
            for name, value in zip(names, values, strict=True)
            if value is not None
        }
        out: list[DeadLetter | None] = []
        for letter in letters:
            if not letter.sealed:
                out.append(letter)
                continue
            key = keys.get(letter.sealed)
            if key is None:
                out.append(None)
                continue
            ref = letter.sealed.rsplit(":", 1)[-1]
            try:
                aead = AESGCM(key)
                update: dict[str, Any] = {
                    "key_b64": _open(aead, letter.key_b64, ref),
                    "value_b64": _open(aead, letter.value_b64, ref),
                    "reason": base64.b64decode(_open(aead, letter.reason, ref) or "").decode(),
                    "sealed": None,
                }
            except (InvalidTag, ValueError):
                # A newer key under the same name (the first expired, and a later letter
                # of the same day made another; or the lead was erased and came back).
                out.append(None)
                continue
            out.append(letter.model_copy(update=update))
        return out


async def _lead_key_names(client: aioredis.Redis, prefix: str, pseudonym: str) -> list[str]:
    """Every name a key of the lead's dead letters may have (with the prefix)."""
    days = [cast(bytes, d).decode() for d in await client.zrange(prefix + DAYS_INDEX, 0, -1)]
    # and the lead's key from before keys were per day
    return [prefix + day_key_name(day, pseudonym) for day in days] + [f"{prefix}dlkey:{pseudonym}"]


async def dead_letter_key_ttl_ms(client: aioredis.Redis, prefix: str, pseudonym: str) -> int:
    """Milliseconds until the last of the lead's dead-letter keys expires (its dead letters
    can be read until then); -2 if it has none, -1 if one never expires."""
    pipe = client.pipeline(transaction=False)
    for name in await _lead_key_names(client, prefix, pseudonym):
        pipe.pttl(name)
    ttls = [int(ms) for ms in await pipe.execute() if int(ms) != -2]
    if not ttls:
        return -2
    return -1 if -1 in ttls else max(ttls)


async def forget_dead_letter_keys(
    client: aioredis.Redis, prefix: str, *pseudonyms: str
) -> dict[str, int]:
    """Delete the dead-letter keys of these leads, of every day (erasure): pseudonym ->
    how many went. Their letters, wherever they are, can no longer be read.

    Two round trips whatever the number of leads: the days in ``P dlkey-days``, then one
    pipeline of deletes (the lead's key of each day, and its key from before keys were
    per day).
    """
    if not pseudonyms:
        return {}
    days = [cast(bytes, d).decode() for d in await client.zrange(prefix + DAYS_INDEX, 0, -1)]
    pipe = client.pipeline(transaction=False)
    for p in pseudonyms:  # as _lead_key_names, with one read of the days for all leads
        pipe.delete(*[prefix + day_key_name(day, p) for day in days], f"{prefix}dlkey:{p}")
    return {p: int(n) for p, n in zip(pseudonyms, await pipe.execute(), strict=True)}


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
