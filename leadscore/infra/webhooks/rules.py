"""Webhook logic with no I/O: filters, Standard Webhooks signing, the retry schedule, URL rules.

Signing follows the Standard Webhooks specification (https://www.standardwebhooks.com):
the receiver gets ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed with the
bytes of the secret ``whsec_<base64>``. The stock ``standardwebhooks`` packages verify it.

Nothing here opens a socket: DNS resolution and HTTP live in
:mod:`leadscore.infra.webhooks.http`, which hands the resolved addresses to
:meth:`AddressPolicy.refusal`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import math
import random
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import orjson

from leadscore.schemas.scores import LeadScored, Reason
from leadscore.schemas.webhooks import WebhookEnvelope, WebhookFilters

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SECRET_PREFIX = "whsec_"
#: Random bytes in a generated secret (the spec allows 24-64).
SECRET_BYTES = 32
#: Each retry waits between (1 - JITTER) and 1 times its nominal delay: spreads the retries
#: of many deliveries that failed together, and never pushes the last one past the horizon.
JITTER = 0.2


class WebhookError(ValueError):
    """Base of webhook configuration errors; the message says what to change."""


class WebhookSecretError(WebhookError):
    """A secret is not in the ``whsec_<base64 of 24-64 bytes>`` form."""


class WebhookUrlError(WebhookError):
    """A receiver URL is malformed or points where webhooks may not go."""


# --- filters -------------------------------------------------------------------------------------


def passes(filters: WebhookFilters, event: LeadScored) -> bool:
    """Whether ``event`` passes every filter that is set.

    Examples:
        >>> from datetime import UTC
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> event = LeadScored(id="sc_1", lead_id="lead-1", score=85, probability=0.85, grade="A",
        ...     previous_score=70, previous_grade="B", model_version="m1", base_score=30.0,
        ...     reasons=[], cause_event_id="e1", event_time=t, scored_at=t)
        >>> passes(WebhookFilters(min_score=80, grade_change_only=True), event)
        True
        >>> passes(WebhookFilters(min_score=90), event), passes(WebhookFilters(lead_ids={"x"}), event)
        (False, False)
    """
    if filters.min_score is not None and event.score < filters.min_score:
        return False
    if filters.grade_change_only and event.grade == event.previous_grade:
        return False
    if filters.lead_ids is not None and event.lead_id not in filters.lead_ids:
        return False
    return True


# --- payload and signing -------------------------------------------------------------------------


def envelope_body(event: LeadScored) -> bytes:
    """The JSON body of a score event's webhook: ``{"type", "timestamp", "data"}``.

    Encoded once per delivery and sent byte for byte on every attempt (the signature
    covers these exact bytes).
    """
    envelope = WebhookEnvelope(timestamp=event.scored_at, data=event)
    return orjson.dumps(envelope.model_dump(mode="json"))


def generate_secret() -> str:
    """A new random secret in the ``whsec_<base64>`` form (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret stands for.

    Raises:
        WebhookSecretError: not ``whsec_`` + base64 of 24-64 bytes.

    Examples:
        >>> len(secret_key(generate_secret()))
        32
    """
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(
            f"a webhook secret starts with {SECRET_PREFIX!r} (got {secret[:6]!r}...); "
            "leave it out to have one generated"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretError(
            f"the part after {SECRET_PREFIX!r} must be standard base64 (A-Z a-z 0-9 + / =)"
        ) from exc
    if not 24 <= len(key) <= 64:
        raise WebhookSecretError(
            f"a webhook secret must hold 24-64 bytes, this one holds {len(key)}"
        )
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

    Examples:
        >>> sign("whsec_" + "A" * 32, "msg_1", 1700000000, b'{"a":1}')
        'v1,HA9nSvEEuynF+mEPWgOAUWbrVA21G6kMzfOt+yEvB3I='
    """
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a webhook request carries (Standard Webhooks, plus the content type).

    Args:
        secret: the subscription's ``whsec_`` secret.
        webhook_id: the message id (the score event's id): the same on every attempt.
        timestamp: Unix seconds of this attempt (receivers refuse ones more than 5 minutes off).
        body: the exact request body.
    """
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def delivery_id(subscription_id: str, event_id: str) -> str:
    """The id of the delivery of one event to one subscription: deterministic, so a score
    event read twice from Kafka (at-least-once) is queued once.

    Examples:
        >>> delivery_id("wh_1", "sc_1") == delivery_id("wh_1", "sc_1") != delivery_id("wh_2", "sc_1")
        True
    """
    digest = hashlib.blake2b(f"{subscription_id}\x00{event_id}".encode(), digest_size=12)
    return "dlv_" + digest.hexdigest()


# --- retries -------------------------------------------------------------------------------------


def retry_delays(max_attempts: int, first_retry_s: float, horizon_s: float) -> list[float]:
    """Nominal seconds to wait after each failed attempt: exponential, summing to the horizon.

    The delays grow by one common ratio so that the first retry waits ``first_retry_s``
    and the last attempt falls ``horizon_s`` after the first. When even equal delays of
    ``first_retry_s`` would overrun the horizon, they are all ``horizon_s / retries``; a
    single retry waits the whole horizon.

    Args:
        max_attempts: attempts in all, the first included (``max_attempts - 1`` delays).
        first_retry_s: wait before the first retry.
        horizon_s: seconds from the first attempt to the last.

    Examples:
        >>> [round(d, 1) for d in retry_delays(4, 1.0, 7.0)]
        [1.0, 2.0, 4.0]
        >>> retry_delays(3, 10.0, 4.0), retry_delays(2, 1.0, 60.0), retry_delays(1, 1.0, 60.0)
        ([2.0, 2.0], [60.0], [])
    """
    retries = max_attempts - 1
    if retries <= 0:
        return []
    if retries == 1 or first_retry_s * retries >= horizon_s:
        return [horizon_s / retries] * retries

    def total(ratio: float) -> float:
        return sum(first_retry_s * ratio**k for k in range(retries))

    low, high = 1.0, 2.0
    while total(high) < horizon_s:
        high *= 2.0
    for _ in range(100):  # bisection to float precision
        middle = (low + high) / 2.0
        if total(middle) < horizon_s:
            low = middle
        else:
            high = middle
    ratio = (low + high) / 2.0
    return [first_retry_s * ratio**k for k in range(retries)]


def jittered(delay_s: float, rng: random.Random) -> float:
    """``delay_s`` less up to :data:`JITTER` of it, at random.

    Examples:
        >>> 8.0 <= jittered(10.0, random.Random(0)) <= 10.0
        True
    """
    return delay_s * (1.0 - JITTER * rng.random())


# --- receiver URLs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A checked receiver URL, split into what a connection needs."""

    url: str
    scheme: str
    host: str  # a name or an IP literal, without brackets
    port: int

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host as written, with the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address``, so the request goes exactly there.

        Examples:
            >>> t = parse_target("https://hooks.example.com/in?x=1")
            >>> t.pinned_url(ipaddress.ip_address("2001:db8::1")), t.host_header
            ('https://[2001:db8::1]:443/in?x=1', 'hooks.example.com')
        """
        parts = urlsplit(self.url)
        host = f"[{address}]" if address.version == 6 else str(address)
        return urlunsplit((self.scheme, f"{host}:{self.port}", parts.path or "/", parts.query, ""))


def parse_target(url: str) -> Target:
    """Check a receiver URL's form: http(s), a host, no user:password, no fragment.

    Raises:
        WebhookUrlError: the message says what is wrong.

    Examples:
        >>> parse_target("http://127.0.0.1:8080/hook").port
        8080
        >>> parse_target("ftp://example.com/")
        Traceback (most recent call last):
        ...
        leadscore.infra.webhooks.rules.WebhookUrlError: a webhook URL must start with http:// or https://, got 'ftp://example.com/'
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"{url!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlError(f"a webhook URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise WebhookUrlError(f"the webhook URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError(
            "a webhook URL may not carry a user name or password; receivers authenticate "
            "requests by their signature"
        )
    if parts.fragment:
        raise WebhookUrlError(f"a webhook URL may not have a #fragment, got {url!r}")
    host = parts.hostname.rstrip(".").lower()
    if not host:
        raise WebhookUrlError(f"the webhook URL {url!r} has no host")
    return Target(
        url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80)
    )


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, else ``None`` (a name to resolve)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_networks(text: str | None) -> tuple[IPNetwork, ...]:
    """Comma-separated networks (``10.0.0.0/8,::1/128``; a bare address is a /32 or /128).

    Raises:
        WebhookError: a part is not a network.

    Examples:
        >>> parse_networks("127.0.0.0/8, ::1")
        (IPv4Network('127.0.0.0/8'), IPv6Network('::1/128'))
    """
    if not text:
        return ()
    out: list[IPNetwork] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise WebhookError(f"{part!r} is not a network like '10.0.0.0/8' or '::1/128'") from exc
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Where webhooks may go: public addresses, plus private ones only when allowed.

    Args:
        allow_private: allow every non-public address (private, loopback, link-local, ...).
        allowed_networks: non-public networks allowed even so.
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why a request to ``address`` is refused, or ``None`` when it may go.

        Refused: everything that is not a public unicast address -- private (10/8, 172.16/12,
        192.168/16, fc00::/7), loopback, link-local (169.254/16 with cloud metadata
        services, fe80::/10), shared (100.64/10), unspecified, reserved and multicast --
        also inside an IPv4-mapped IPv6 address.

        Examples:
            >>> AddressPolicy().refusal(ipaddress.ip_address("169.254.169.254"))
            '169.254.169.254 is a link-local address'
            >>> AddressPolicy().refusal(ipaddress.ip_address("93.184.215.14")) is None
            True
            >>> AddressPolicy(allowed_networks=parse_networks("127.0.0.0/8")).refusal(
            ...     ipaddress.ip_address("127.0.0.1")) is None
            True
        """
        checked: IPAddress = address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            checked = address.ipv4_mapped
        if checked.is_global and not checked.is_multicast:
            return None
        if self.allow_private or any(
            checked in network or address in network for network in self.allowed_networks
        ):
            return None
        return f"{address} is {_kind(checked)}"


def _kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_private:
        return "a private address"
    return "not a public address"


def check_addresses(target: Target, addresses: list[IPAddress], policy: AddressPolicy) -> IPAddress:
    """The address to connect to: the first of ``addresses``, once all of them are allowed.

    Every address the name resolves to must be allowed, not only the one used: a name
    with one public and one private address could otherwise be steered to the private one.

    Raises:
        WebhookUrlError: no address, or one of them is refused.
    """
    if not addresses:
        raise WebhookUrlError(f"{target.host} resolves to no address")
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            where = (
                target.host
                if literal_address(target.host) is not None
                else f"{target.host} ({address})"
            )
            raise WebhookUrlError(
                f"webhooks may not go to {where}: {reason}; set LEADSCORE_WEBHOOK_ALLOW_PRIVATE=true "
                "or list the network in LEADSCORE_WEBHOOK_ALLOWED_NETWORKS to allow it"
            )
    return addresses[0]


def next_attempt_delay(
    round_attempts: int, delays: list[float], rng: random.Random
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` when the attempts are used up.

    Args:
        round_attempts: attempts made so far in this round (1 after the first failure).
        delays: :func:`retry_delays` of the settings.
        rng: the jitter's random source.
    """
    if round_attempts > len(delays):
        return None
    return jittered(delays[round_attempts - 1], rng)


def retry_delays_summary(delays: list[float]) -> str:
    """The schedule in words, for logs and docs (``5s, 16s, 52s, ...``).

    Examples:
        >>> retry_delays_summary([0.245, 5.0, 16.2, 3600.0])
        '0.24s, 5s, 16s, 1h0m'
    """
    words = []
    for delay in delays:
        if delay < 60:
            words.append(f"{delay:.2g}s" if delay < 10 else f"{math.floor(delay + 0.5)}s")
        elif delay < 3600:
            words.append(f"{int(delay // 60)}m{int(delay % 60)}s")
        else:
            words.append(f"{int(delay // 3600)}h{int(delay % 3600 // 60)}m")
    return ", ".join(words)


def sample_event(event_id: str, now: datetime) -> LeadScored:
    """The score event a test-fire sends: an invented lead moving from 74 (B) to 82 (A)."""
    return LeadScored(
        id=event_id,
        lead_id="sample-lead",
        score=82,
        probability=0.82,
        grade="A",
        previous_score=74,
        previous_grade="B",
        model_version="sample",
        base_score=31.0,
        reasons=[
            Reason(feature="demo_requests", label="1 demo request", value=1.0, contribution=24.5),
            Reason(
                feature="pricing_views", label="3 pricing page views", value=3.0, contribution=11.2
            ),
        ],
        cause_event_id="sample-event",
        event_time=now,
        scored_at=now,
    )
