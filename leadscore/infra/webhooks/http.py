"""Webhooks: one signed HTTP request, sent to the receiver's address as resolved and checked.

Used by the delivery loop (:mod:`leadscore.infra.webhooks.delivery`) and by the API (URL
checks and test-fires); the overview is in :mod:`leadscore.infra.webhooks.worker`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import orjson

from leadscore.infra.webhooks.addresses import (
    AddressPolicy,
    IPAddress,
    Target,
    check_addresses,
    literal_address,
    parse_networks,
    parse_target,
)
from leadscore.infra.webhooks.errors import WebhookUrlError
from leadscore.infra.webhooks.messages import delivery_id, envelope_body, sample_event
from leadscore.infra.webhooks.signing import signature_headers
from leadscore.schemas.webhooks import DeliveryAttempt, WebhookSubscription, WebhookTestResult
from leadscore.settings import Settings

USER_AGENT = "leadscore-webhooks/1"
#: Response bytes read (and the first ones quoted in an error); the rest is not read.
_MAX_RESPONSE_BYTES = 65_536
_ERROR_EXCERPT_CHARS = 200


def address_policy(settings: Settings) -> AddressPolicy:
    """Where webhooks may go, from ``webhook_allow_private`` and ``webhook_allowed_networks``."""
    return AddressPolicy(
        allow_private=settings.webhook_allow_private,
        allowed_networks=parse_networks(settings.webhook_allowed_networks),
    )


def http_client(
    timeout_s: float, *, connections: int = 8, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client for webhook requests: no redirects, no proxies from the environment.

    Redirects are not followed (a 3xx is a failed attempt): a receiver could otherwise
    send us to an address the URL check never saw. Environment proxies are ignored for
    the same reason: the request must go to the address that was checked.

    Args:
        timeout_s: per attempt.
        connections: open connections it keeps (keep-alive), over all receivers.
        verify: TLS verification, or a shared context (loading the CA store costs ~60 ms).
    """
    # httpx logs every request at INFO: at thousands of deliveries a second (or a receiver
    # down) that floods the worker's log. Every attempt is in the delivery log instead.
    logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
        trust_env=False,
        verify=verify,
    )


class ClientSlots:
    """One small httpx client per delivery in flight, lent out and given back.

    httpcore's connection pool does work proportional to its connections times its
    waiting requests on every request, so one client shared by 32 concurrent deliveries
    spends most of its CPU there: measured to a local receiver, 244 deliveries/s through
    one client with 32 connections, 1,060/s through 32 clients of one connection each.
    A slot runs one request at a time, so its pool stays tiny. Slots are reused last in,
    first out: the one lent next is the one with the warmest keep-alive connections.

    Args:
        size: how many deliveries run at once (``webhook_concurrency``).
        timeout_s: per attempt.
    """

    #: Connections one slot keeps open (to the last few receivers it talked to).
    CONNECTIONS_PER_SLOT = 4

    def __init__(self, size: int, timeout_s: float) -> None:
        context = ssl.create_default_context()
        self._all = [
            http_client(timeout_s, connections=self.CONNECTIONS_PER_SLOT, verify=context)
            for _ in range(size)
        ]
        self._free = list(self._all)

    def lend(self) -> httpx.AsyncClient:
        """A free client; give it back with :meth:`give_back`.

        Raises:
            RuntimeError: more deliveries at once than slots (a bug in the caller).
        """
        if not self._free:
            raise RuntimeError(f"all {len(self._all)} webhook client slots are lent out")
        return self._free.pop()

    def give_back(self, client: httpx.AsyncClient) -> None:
        """Return a client lent by :meth:`lend`."""
        self._free.append(client)

    async def aclose(self) -> None:
        """Close every client (their connections)."""
        await asyncio.gather(*(client.aclose() for client in self._all))


# --- the receiver's address ----------------------------------------------------------------------


async def resolve(target: Target, policy: AddressPolicy, timeout_s: float) -> IPAddress:
    """The address to send to: ``target``'s host resolved now, every address checked.

    Done before every attempt, and the request then goes to that very address (the
    host name only in ``Host`` and TLS SNI), so a name that resolved to a public address
    when the subscription was made cannot later be pointed at a private one (DNS rebinding).

    Raises:
        WebhookUrlError: the name does not resolve, or to an address that is refused.
    """
    literal = literal_address(target.host)
    if literal is not None:
        return check_addresses(target, [literal], policy)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM), timeout_s
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlError(f"{target.host} does not resolve ({exc})") from exc
    except TimeoutError as exc:
        raise WebhookUrlError(f"{target.host} did not resolve within {timeout_s:g} s") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return check_addresses(target, addresses, policy)


async def check_url(url: str, policy: AddressPolicy, timeout_s: float = 5.0) -> Target:
    """Check a receiver URL as a subscription is made or changed: its form and its addresses.

    Raises:
        WebhookUrlError: the message says what is wrong and which setting allows it.
    """
    target = parse_target(url)
    await resolve(target, policy, timeout_s)
    return target


# --- one signed request ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one HTTP attempt ended."""

    ok: bool
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None

    def as_attempt(self, number: int) -> DeliveryAttempt:
        """The attempt as the delivery log keeps it."""
        return DeliveryAttempt(
            number=number,
            started_at=self.started_at,
            duration_ms=round(self.duration_ms, 1),
            status_code=self.status_code,
            error=self.error,
        )


async def post_signed(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    webhook_id: str,
    body: bytes,
    policy: AddressPolicy,
    timeout_s: float,
) -> AttemptOutcome:
    """POST ``body`` to ``url``, signed for this moment; a 2xx is success, anything else not.

    Never raises for what the receiver or the network does: every failure comes back as
    an outcome with its reason (refused address, DNS, connection, timeout, status).
    """
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        target = parse_target(url)
        address = await resolve(target, policy, timeout_s)
        headers = signature_headers(secret, webhook_id, int(time.time()), body)
        headers |= {"host": target.host_header, "user-agent": USER_AGENT}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        # httpx's timeout bounds each phase; this bounds the whole request, so a receiver
        # that answers a byte at a time cannot hold an attempt past its lease.
        async with (
            asyncio.timeout(timeout_s),
            client.stream(
                "POST",
                target.pinned_url(address),
                content=body,
                headers=headers,
                extensions=extensions,
            ) as response,
        ):
            status = response.status_code
            excerpt = b""
            async for chunk in response.aiter_raw():  # read a little, so the connection is reused
                if len(excerpt) < _ERROR_EXCERPT_CHARS:
                    excerpt += chunk[: _ERROR_EXCERPT_CHARS - len(excerpt)]
                if response.num_bytes_downloaded > _MAX_RESPONSE_BYTES:
                    break
        if not 200 <= status < 300:
            said = excerpt.decode(errors="replace").strip()
            error = f"the receiver answered {status}" + (f": {said}" if said else "")
    except WebhookUrlError as exc:
        error = f"refused: {exc}"
    except (httpx.TimeoutException, TimeoutError):
        what = "no answer" if status is None else f"the answer ({status}) did not finish"
        error = f"{what} within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return AttemptOutcome(
        ok=error is None,
        started_at=started_at,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        status_code=status,
        error=error,
    )


async def fire_test_event(
    subscription: WebhookSubscription, settings: Settings
) -> WebhookTestResult:
    """Send one signed sample event to a subscription now (not queued, not retried)."""
    now = datetime.now(UTC)
    webhook_id = "test_" + delivery_id(subscription.id, f"{time.time_ns()}")[4:]
    body = envelope_body(sample_event(webhook_id, now))
    async with http_client(settings.webhook_timeout_s, connections=1) as client:
        outcome = await post_signed(
            client, subscription.url, subscription.secret, webhook_id, body,
            address_policy(settings), settings.webhook_timeout_s,
        )  # fmt: skip
    return WebhookTestResult(
        webhook_id=webhook_id,
        delivered=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=round(outcome.duration_ms, 1),
        payload=orjson.loads(body),
    )
