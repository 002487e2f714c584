"""Sealing Redis's values again with the current data key (rotation; docs/privacy.md).

What a data key seals in Redis: the lead states (``state:<lead>``), the activity entries
(``activity:<lead>``) and the dead-letter keys (``dlkey:<day>:<ref>``). A reseal walks
them with SCAN, a page at a time (one MGET or pipeline of LRANGEs, then one pipeline of
writes per page), and writes back what another key (or none) sealed.

Safe while workers write: every write is a compare-and-set in Lua (the value, or the
whole activity list, must still be the one that was read; TTLs are kept). What changed
meanwhile is read again, up to :data:`ATTEMPTS` times; a worker already restarted with
the new key writes it sealed under that key anyway. Then a second, read-only walk counts
what still uses another key (a process still sealing with an old one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis

from leadscore.infra.privacy.crypto import Keyring, key_id_of
from leadscore.infra.privacy.dead_letters import DEAD_LETTER_KEY_BYTES

#: Reads and write attempts of a value that keeps changing under the reseal.
ATTEMPTS = 3
_PAGE = 500
_PLAIN = "plain"

# KEYS: the key. ARGV: the value read, the new value. KEEPTTL: a dead-letter key's expiry stays.
_SET_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0
"""
# KEYS: the list. ARGV: n, then the n entries read, then the n new entries. LSET keeps the TTL.
_LIST_IF = """
local n = tonumber(ARGV[1])
if redis.call('LLEN', KEYS[1]) ~= n then return 0 end
local now = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, n do if now[i] ~= ARGV[1 + i] then return 0 end end
for i = 1, n do
  if ARGV[1 + n + i] ~= ARGV[1 + i] then redis.call('LSET', KEYS[1], i - 1, ARGV[1 + n + i]) end
end
return 1
"""


@dataclass
class ResealReport:
    """What a reseal did.

    Attributes:
        resealed: values sealed again, by the key that had sealed them (``plain``: none).
        current: values already under the current key.
        changed_meanwhile: values left as they were: rewritten by another process at each
            of :data:`ATTEMPTS` tries.
        old_keys_left: after the reseal, values still under another key (or plain), by key.
    """

    current_key: str
    resealed: dict[str, int] = field(default_factory=dict)
    current: int = 0
    changed_meanwhile: int = 0
    old_keys_left: dict[str, int] = field(default_factory=dict)


@dataclass
class _Kind:
    pattern: str  # after the prefix
    is_list: bool = False
    is_key: bool = False  # a dead-letter key, sealed with its own name as associated data

    def aad(self, prefix: str, key: str) -> bytes:
        """What the value was sealed with as associated data: the lead id for states and
        activity, the key's own name (without the prefix) for a dead-letter key."""
        name = key.removeprefix(prefix)
        return name.encode() if self.is_key else name.split(":", 1)[1].encode()


_KINDS = (_Kind("state:*"), _Kind("activity:*", is_list=True), _Kind("dlkey:*", is_key=True))


async def reseal(client: aioredis.Redis, prefix: str, keyring: Keyring) -> ResealReport:
    """Seal every value a data key seals in Redis with the current key; then count what
    still uses another key.

    Raises:
        KeyringError: a value is sealed with a key ``keyring`` does not have.
        ValueError: ``keyring`` does not seal (encryption at rest is off).
    """
    if not keyring.enabled:
        raise ValueError("encryption at rest is off (LEADSCORE_ENCRYPT_AT_REST=false)")
    report = ResealReport(current_key=keyring.current_id)
    resealer = _Resealer(client, prefix, keyring, report)
    for kind in _KINDS:
        async for page in _pages(client, prefix + kind.pattern):
            await resealer.page(kind, page)
    for kind in _KINDS:
        async for page in _pages(client, prefix + kind.pattern):
            for values in await _read(client, kind, page):
                for value in values:
                    kid = _kid(kind, value)
                    if kid != keyring.current_id:
                        report.old_keys_left[kid] = report.old_keys_left.get(kid, 0) + 1
    return report


async def _pages(client: aioredis.Redis, pattern: str) -> AsyncIterator[list[str]]:
    page: list[str] = []
    async for raw in client.scan_iter(match=pattern, count=_PAGE):
        page.append(raw.decode())
        if len(page) >= _PAGE:
            yield page
            page = []
    if page:
        yield page


async def _read(client: aioredis.Redis, kind: _Kind, keys: list[str]) -> list[list[bytes]]:
    """The values under each key (one for a string, the entries of a list; none if gone)."""
    if not kind.is_list:
        values = await client.mget(keys)
        return [[cast(bytes, v)] if v is not None else [] for v in values]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.lrange(key, 0, -1)
    return cast(list[list[bytes]], await pipe.execute())


def _kid(kind: _Kind, value: bytes) -> str:
    """The id of the key that sealed ``value``, or ``plain``."""
    if kind.is_key and len(value) == DEAD_LETTER_KEY_BYTES:
        return _PLAIN  # a dead-letter key kept as it is (it may start like a sealed value)
    return key_id_of(value) or _PLAIN


class _Resealer:
    def __init__(
        self, client: aioredis.Redis, prefix: str, keyring: Keyring, report: ResealReport
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.keyring = keyring
        self.report = report
        self.set_if = client.register_script(_SET_IF)
        self.list_if = client.register_script(_LIST_IF)

    async def page(self, kind: _Kind, keys: list[str]) -> None:
        """Reseal one page of keys: one read, one pipeline of writes; the keys that changed
        meanwhile are read and written again."""
        report = self.report
        for _ in range(ATTEMPTS):
            writes: list[tuple[str, list[bytes], list[bytes]]] = []
            for key, values in zip(keys, await _read(self.client, kind, keys), strict=True):
                new = [self._again(kind, key, v) for v in values]
                if new != values:
                    writes.append((key, values, new))
                else:
                    report.current += len(values)
            if not writes:
                return
            pipe = self.client.pipeline(transaction=False)
            for key, old, new in writes:
                if kind.is_list:
                    await self.list_if(keys=[key], args=[len(old), *old, *new], client=pipe)
                else:
                    await self.set_if(keys=[key], args=[old[0], new[0]], client=pipe)
            keys = []
            for (key, old, new), done in zip(writes, await pipe.execute(), strict=True):
                if not done:
                    keys.append(key)
                    continue
                for value, again in zip(old, new, strict=True):
                    if value == again:
                        report.current += 1
                    else:
                        kid = _kid(kind, value)
                        report.resealed[kid] = report.resealed.get(kid, 0) + 1
        report.changed_meanwhile += len(keys)

    def _again(self, kind: _Kind, key: str, value: bytes) -> bytes:
        """``value`` sealed with the current key (itself if it is already)."""
        kid = _kid(kind, value)
        if kid == self.keyring.current_id:
            return value
        aad = kind.aad(self.prefix, key)
        plain = value if kid == _PLAIN else self.keyring.open(value, aad)
        return self.keyring.seal(plain, aad)


def summary(report: ResealReport) -> list[str]:
    """Lines for the person who ran the reseal."""
    done = sum(report.resealed.values())
    by_key = ", ".join(f"{kid}: {n:,}" for kid, n in sorted(report.resealed.items()))
    lines = [
        f"resealed {done:,} values with data key {report.current_key}"
        + (f" (they were under {by_key})" if by_key else "")
        + f"; {report.current:,} were under it already"
    ]
    if report.changed_meanwhile:
        lines.append(
            f"{report.changed_meanwhile:,} keys changed at every try and were left as they were"
        )
    if report.old_keys_left:
        left = ", ".join(f"{kid}: {n:,}" for kid, n in sorted(report.old_keys_left.items()))
        lines.append(
            f"values in Redis still under another key: {left}. A process still seals with "
            "an old key: restart it with the new keys, then reseal again"
        )
    else:
        lines.append(
            f"no value in Redis uses another key than {report.current_key} now. The worker's "
            "table still may (its values are sealed again as their leads are written): keep "
            "the old keys until every lead has been written since, or has passed "
            "LEADSCORE_LEAD_RETENTION_DAYS"
        )
    return lines
