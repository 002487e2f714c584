"""Sealing Redis's lead states and activity again with the current data key (rotation).

Safe while workers write: a value is replaced only if it is still the one that was read
(a compare-and-set in Lua); a value the worker rewrote meanwhile is sealed with the current
key already.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import redis.asyncio as aioredis

from leadscore.infra.privacy.crypto import Keyring, key_id_of

# KEYS: the state key. ARGV: the value read, the new value.
_SET_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# KEYS: the activity list. ARGV: index, the value read, the new value.
_LSET_IF = """
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[3]) return 1
end
return 0
"""


@dataclass
class ResealReport:
    """What a reseal did: values sealed again, by the key they had; values left as they were."""

    resealed: dict[str, int] = field(default_factory=dict)
    current: int = 0
    changed_meanwhile: int = 0
    old_keys_left: dict[str, int] = field(default_factory=dict)


async def reseal(client: aioredis.Redis, prefix: str, keyring: Keyring) -> ResealReport:
    """Seal every ``state:`` and ``activity:`` value with the current key; then count what
    still uses another key (values written by a process not yet restarted with the new key)."""
    report = ResealReport()
    set_if = client.register_script(_SET_IF)
    lset_if = client.register_script(_LSET_IF)
    state_prefix, activity_prefix = f"{prefix}state:", f"{prefix}activity:"
    async for raw in client.scan_iter(match=f"{state_prefix}*", count=500):
        key = raw.decode()
        value = cast(bytes | None, await client.get(key))
        if value is None:
            continue
        lead = key.removeprefix(state_prefix)
        await _one(
            report,
            keyring,
            value,
            lead,
            partial(_call, set_if, [key], [value]),
        )
    async for raw in client.scan_iter(match=f"{activity_prefix}*", count=500):
        key = raw.decode()
        lead = key.removeprefix(activity_prefix)
        for index, value in enumerate(cast(list[bytes], await client.lrange(key, 0, -1))):
            await _one(
                report, keyring, value, lead,
                partial(_call, lset_if, [key], [index, value]),
            )  # fmt: skip
    async for raw in client.scan_iter(match=f"{state_prefix}*", count=500):
        value = cast(bytes | None, await client.get(raw))
        kid = key_id_of(value) if value is not None else None
        if kid is not None and kid != keyring.current_id:
            report.old_keys_left[kid] = report.old_keys_left.get(kid, 0) + 1
    return report


async def _one(
    report: ResealReport,
    keyring: Keyring,
    value: bytes,
    lead: str,
    write: Callable[[bytes], Awaitable[Any]],
) -> None:
    kid = key_id_of(value) or "plain"
    if kid == keyring.current_id:
        report.current += 1
        return
    new = keyring.seal(keyring.open(value, lead.encode()), lead.encode())
    if await write(new):
        report.resealed[kid] = report.resealed.get(kid, 0) + 1
    else:
        report.changed_meanwhile += 1


async def _call(script: Any, keys: list[Any], args: list[Any], new: bytes) -> Any:
    return await script(keys=keys, args=[*args, new])
