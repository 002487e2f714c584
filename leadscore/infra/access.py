"""API keys (stored hashed, with scopes) and the audit log, both in Redis.

Keys (``P`` is the configured prefix):

- ``P apikeys``  hash: key id -> JSON record (name, scopes, sha256 of the key, created, revoked)
- ``P audit``    stream of audit entries (who, what, when, outcome), capped

A key reads ``lsk_<id>_<secret>``: the id finds the record, the secret is checked by its
SHA-256 (keys are 192 random bits, so a plain hash is as strong as a slow one, and cheap
enough to check on every request). The key itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

#: What each scope allows. ``admin`` implies every other scope, ``score`` implies ``read``.
SCOPES: tuple[str, ...] = ("read", "score", "privacy", "admin")
#: ``privacy`` (erase a lead, export what is held about one) implies ``read`` only: whoever
#: answers subject requests reads lead data, but needs no scoring or model rights.
#: ``admin`` implies it, so admin keys keep the erasure rights they had before it existed.
_IMPLIED = {
    "read": {"read"},
    "score": {"read", "score"},
    "privacy": {"read", "privacy"},
    "admin": {"read", "score", "privacy", "admin"},
}
#: Scopes whose calls go to the audit log, allowed or refused.
AUDITED_SCOPES = frozenset({"admin", "privacy"})
KEY_PREFIX = "lsk_"


class AccessError(ValueError):
    """A key or scope request is malformed (the message says how)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record (never the key itself)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None
    key_hash: str = ""

    def allows(self, scope: str) -> bool:
        """Whether this key may do what ``scope`` allows.

        Examples:
            >>> key = ApiKey("k1", "crm", ("score",), "2026-01-01T00:00:00Z")
            >>> key.allows("read"), key.allows("score"), key.allows("admin")
            (True, True, False)
        """
        return self.revoked_at is None and any(scope in _IMPLIED[s] for s in self.scopes)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Validate scope names; returns them sorted and deduplicated.

    Examples:
        >>> check_scopes(["score", "read", "score"])
        ('read', 'score')
    """
    chosen = tuple(sorted(set(scopes)))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise AccessError(f"scopes must be some of {', '.join(SCOPES)}; got {list(scopes)!r}")
    return chosen


def split_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key in the ``lsk_<id>_<secret>`` form, else ``None``.

    Examples:
        >>> split_key("lsk_0a1b2c3d4e5f_s3cr3t"), split_key("nonsense")
        (('0a1b2c3d4e5f', 's3cr3t'), None)
    """
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class KeyStore:
    """Creates, lists, revokes and verifies API keys."""

    def __init__(self, client: aioredis.Redis, prefix: str = "leadscore:") -> None:
        self.client = client
        self.key = f"{prefix}apikeys"

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
        """A new key: returns ``(the key, its record)``. The key is not stored anywhere."""
        if not name.strip() or len(name) > 100:
            raise AccessError(
                "a key needs a name of 1-100 characters, e.g. the system that uses it"
            )
        chosen = check_scopes(scopes)
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        record = ApiKey(key_id, name.strip(), chosen, _now(), None, _hash(key))
        await self.client.hset(self.key, key_id, orjson.dumps(_to_json(record)))
        return key, record

    async def list(self) -> list[ApiKey]:
        raw = await self.client.hgetall(self.key)
        keys = [_from_json(orjson.loads(v)) for v in raw.values()]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (the record is kept, for the audit trail)."""
        raw = await self.client.hget(self.key, key_id)
        if raw is None:
            raise AccessError(
                f"no API key with id {key_id!r} (list them with `leadscore keys list`)"
            )
        record = _from_json(orjson.loads(raw))
        if record.revoked_at is None:
            record = ApiKey(**{**_to_json(record), "scopes": record.scopes, "revoked_at": _now()})
            await self.client.hset(self.key, key_id, orjson.dumps(_to_json(record)))
        return record

    async def verify(self, key: str) -> ApiKey | None:
        """The record of a valid, unrevoked key; ``None`` for anything else."""
        parts = split_key(key)
        if parts is None:
            return None
        raw = await self.client.hget(self.key, parts[0])
        if raw is None:
            return None
        record = _from_json(orjson.loads(raw))
        if not hmac.compare_digest(record.key_hash, _hash(key)) or record.revoked_at is not None:
            return None
        return record


def _to_json(record: ApiKey) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "scopes": list(record.scopes),
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
        "key_hash": record.key_hash,
    }


def _from_json(data: dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=data["id"],
        name=data["name"],
        scopes=tuple(data["scopes"]),
        created_at=data["created_at"],
        revoked_at=data.get("revoked_at"),
        key_hash=data.get("key_hash", ""),
    )


class AuditLog:
    """Append-only record of who did what, when, with what outcome (a capped Redis stream)."""

    def __init__(
        self, client: aioredis.Redis, prefix: str = "leadscore:", max_entries: int = 100_000
    ) -> None:
        self.client = client
        self.key = f"{prefix}audit"
        self.max_entries = max_entries

    async def write(self, entry: dict[str, Any]) -> None:
        entry = {"at": _now(), **entry}
        await self.client.xadd(
            self.key, {"entry": orjson.dumps(entry)}, maxlen=self.max_entries, approximate=True
        )

    async def read(self, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (before the entry id ``before``), newest first."""
        if before is not None and before.strip("-0") == "":
            return []  # nothing is older than 0-0
        end = f"({before}" if before else "+"
        try:
            rows = cast(
                list[tuple[bytes | str, dict[Any, Any]]],
                await self.client.xrevrange(self.key, max=end, min="-", count=limit),
            )
        except ResponseError as exc:  # e.g. an id beyond 64 bits
            raise AccessError(
                f"{before!r} is not an audit entry id (like 1764237600000-0)"
            ) from exc
        out = []
        for entry_id, fields in rows:
            data = orjson.loads(fields[b"entry"] if b"entry" in fields else fields["entry"])
            data["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append(data)
        return out
