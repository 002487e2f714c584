"""API-key authentication, scopes and the audit trail of admin and personal-data calls.

A key goes in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (WebSocket
clients, which cannot set headers from a browser, may pass ``?api_key=``). Scopes:
``read`` (scores, history, metrics), ``score`` (score leads; implies read), ``privacy``
(a lead's export and erasure; implies read), ``admin`` (models, experiments, webhooks,
audit; implies all the others). Calls that need ``admin`` or ``privacy`` are audited.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.requests import HTTPConnection

from leadscore.api.errors import ApiError
from leadscore.api.limits import retry_after_header
from leadscore.infra.access import AUDITED_SCOPES, ApiKey, AuditLog, KeyStore

#: The OpenAPI responses every protected route shares.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API key"},
    403: {"description": "the key lacks the scope"},
    429: {"description": "the key sent too many requests; see Retry-After"},
}


class KeyVerifier:
    """Verifies keys against Redis, trusting a verified key for ``cache_s`` seconds.

    The cache bounds how long a revoked key keeps working on one API process (documented
    as ``LEADSCORE_API_KEY_CACHE_S``); it keeps a Redis round trip off most requests.
    """

    def __init__(self, keys: KeyStore, cache_s: float) -> None:
        self.keys = keys
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}
        self.lookups = 0

    async def verify(self, key: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        # One Redis lookup per key at a time: when an entry expires under load, every request
        # in flight would otherwise send its own (measured: up to 1,024 at once at 500 clients).
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self.lookups += 1
            record = await self.keys.verify(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; no "never retrieved" warning
            raise
        finally:
            del self._pending[key]
        if len(self._cache) > 10_000:  # unknown keys from a scanner must not grow it forever
            self._cache.clear()
        self._cache[key] = (time.monotonic(), record)
        future.set_result(record)
        return record


def presented_key(request: HTTPConnection) -> str | None:
    """The key a request (or WebSocket) carries, if any."""
    headers = request.headers
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    return request.query_params.get("api_key") or None


async def authenticate(request: HTTPConnection, scope: str) -> ApiKey:
    """The caller's key if it allows ``scope``; raises 401/403 otherwise (admin: audited)."""
    ctx = request.app.state.ctx
    key = presented_key(request)
    record: ApiKey | None = await ctx.verifier.verify(key) if key else None
    if record is None:
        if scope in AUDITED_SCOPES:
            await _audit(ctx.audit, request, None, 401, "denied: no valid key")
        raise ApiError(
            401,
            "unauthenticated",
            "this endpoint needs an API key in 'Authorization: Bearer <key>' or 'X-API-Key'"
            if key is None
            else "the API key is unknown or revoked; create one with `leadscore keys create`",
        )
    if not record.allows(scope):
        if scope in AUDITED_SCOPES:
            await _audit(
                ctx.audit, request, record, 403, f"denied: key has scopes {list(record.scopes)}"
            )
        raise ApiError(
            403,
            "forbidden",
            f"the key {record.name!r} ({record.id}) has scopes {', '.join(record.scopes)}; "
            f"this endpoint needs '{scope}'",
        )
    wait = ctx.limiter.retry_after(record.id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"the key {record.name!r} ({record.id}) sent more than {ctx.limiter.rate:g} "
            f"requests a second (LEADSCORE_API_RATE_LIMIT); retry in {wait:.2f} s",
            headers={"Retry-After": retry_after_header(wait)},
        )
    if scope in AUDITED_SCOPES:
        request.state.audit_key = record  # MeasureAndAudit writes the entry with the outcome
    return record


def require_scope(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A FastAPI dependency: ``Depends(require_scope("admin"))`` gives the caller's key."""

    async def dependency(request: Request) -> ApiKey:
        return await authenticate(request, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


def _entry(scope: Any, key: ApiKey | None, status: int, outcome: str) -> dict[str, Any]:
    """An audit entry that keeps no more about the call than needed (docs/privacy.md): the
    route's template (``/v1/leads/{lead_id}/export``), never the path that names a lead;
    the caller's key, and its network (not its address) only when it had no valid key, to
    see where refused calls come from."""
    client = scope.get("client")
    return {
        "key_id": key.id if key else None,
        "key_name": key.name if key else None,
        "method": scope.get("method", "WS"),
        "path": route_template(scope),
        "status": status,
        "outcome": outcome,
        "client": None if key is not None or not client else network_of(client[0]),
    }


def route_template(scope: Any) -> str:
    """The template of the route that took the request (Starlette's router puts it in the
    scope as it matches), or ``unmatched``: a path no route took may hold anything."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def network_of(address: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address; ``None`` if it is not an IP.

    An IPv4 address in IPv6 form (a dual-stack socket's ``::ffff:a.b.c.d``) is taken as IPv4.

    Examples:
        >>> network_of("203.0.113.77"), network_of("2001:db8:1:2::5")
        ('203.0.113.0/24', '2001:db8:1::/48')
        >>> network_of("::ffff:203.0.113.77"), network_of("testclient")
        ('203.0.113.0/24', None)
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


async def _audit(
    audit: AuditLog, request: Any, key: ApiKey | None, status: int, outcome: str
) -> None:
    await audit.write(_entry(request.scope, key, status, outcome))


async def audit_admin_call_of(ctx: Any, scope: dict[str, Any], key: ApiKey, status: int) -> None:
    """Write the audit entry of an admin call that passed authentication (from the ASGI scope)."""
    await ctx.audit.write(_entry(scope, key, status, "ok" if status < 400 else "failed"))
