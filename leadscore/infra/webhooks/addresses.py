"""Receiver URLs and the addresses webhooks may go to: public ones, private only when allowed.

Nothing here opens a socket: DNS resolution and HTTP live in
:mod:`leadscore.infra.webhooks.http`, which hands the resolved addresses to
:meth:`AddressPolicy.refusal`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from leadscore.infra.webhooks.errors import WebhookError, WebhookUrlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        leadscore.infra.webhooks.errors.WebhookUrlError: a webhook URL must start with http:// or https://, got 'ftp://example.com/'
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
        also when an IPv6 address carries such an IPv4 address (:func:`embedded_ipv4`:
        IPv4-mapped, NAT64, 6to4, Teredo), and every IPv4-compatible address (``::a.b.c.d``,
        deprecated, routed nowhere).

        Examples:
            >>> AddressPolicy().refusal(ipaddress.ip_address("169.254.169.254"))
            '169.254.169.254 is a link-local address'
            >>> AddressPolicy().refusal(ipaddress.ip_address("93.184.215.14")) is None
            True
            >>> AddressPolicy().refusal(ipaddress.ip_address("64:ff9b::7f00:1"))
            '64:ff9b::7f00:1 is a NAT64 address of 127.0.0.1, a loopback address'
            >>> AddressPolicy(allowed_networks=parse_networks("127.0.0.0/8")).refusal(
            ...     ipaddress.ip_address("127.0.0.1")) is None
            True
        """
        if self.allow_private or any(address in network for network in self.allowed_networks):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            if _is_ipv4_compatible(address):
                return f"{address} is an IPv4-compatible address (deprecated; not routed)"
            for form, inner in embedded_ipv4(address):
                if not _public(inner) and not any(
                    inner in network for network in self.allowed_networks
                ):
                    return f"{address} is {form} of {inner}, {_kind(inner)}"
            if address.ipv4_mapped is not None:
                return None  # judged by the IPv4 address it carries
        if _public(address):
            return None
        return f"{address} is {_kind(address)}"


#: IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64 (RFC 6052, RFC 8215).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form.

    A request to such an address can reach the IPv4 address (through a translator, a
    relay or the host's own stack), so each must pass the policy too.

    Examples:
        >>> embedded_ipv4(ipaddress.IPv6Address("2002:7f00:1::"))
        [('a 6to4 address', IPv4Address('127.0.0.1'))]
        >>> embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111"))
        []
    """
    out: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.ipv4_mapped is not None:
        out.append(("an IPv4-mapped address", address.ipv4_mapped))
    if any(address in network for network in _NAT64):
        out.append(("a NAT64 address", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.sixtofour is not None:
        out.append(("a 6to4 address", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        out += [("a Teredo address", server), ("a Teredo address", client)]
    return out


def _is_ipv4_compatible(address: ipaddress.IPv6Address) -> bool:
    """``::a.b.c.d`` (but not ``::`` or ``::1``, which are judged as they are)."""
    return address in _IPV4_COMPATIBLE and int(address) > 1


def _public(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


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
