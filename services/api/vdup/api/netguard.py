"""Which addresses a client's link may reach: the pure half of the SSRF guard (no I/O).

Why it exists: the API downloads whatever URL a client sends, from inside our network. Without a
policy, ``{"link": "http://169.254.169.254/latest/meta-data/"}`` reads the cloud credentials and
``http://10.0.0.5:9200/`` reaches an internal service. This module decides whether an address may
be contacted; ``vdup.api.fetch`` asks it about the very addresses it is about to connect to, after
resolution, so no spelling of a host name or IP literal can get around it.

The rules:

- Only ``http`` and ``https``; no ``user:password@`` in the link; any port from 1 to 65535.
- Only public unicast addresses by default. Refused: loopback (127/8, ::1), private (RFC 1918,
  ULA fc00::/7, site-local fec0::/10), link-local (169.254/16 with the cloud metadata address
  169.254.169.254, fe80::/10, and fd00:ec2::254), multicast, broadcast, reserved (240/4, IPv6
  outside 2000::/3), unspecified (0.0.0.0/8, ::), shared address space (100.64/10),
  benchmarking (198.18/15, 2001:2::/48), documentation, IETF protocol assignments, discard-only,
  local-use NAT64, and anything else Python does not call globally routable.
- IPv6 forms that carry an IPv4 address are judged by that address as well: IPv4-mapped
  ``::ffff:a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``, IPv4-compatible ``::a.b.c.d``,
  NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16`` and Teredo ``2001::/32`` (server and client).
  A mapped, translated or NAT64 form of a public IPv4 address is that address and is allowed;
  the other forms must also pass the IPv6 rules (Teredo never does).
- The operator's allow-list lifts a refusal: an address inside an allowed network (an IPv4
  address also through its mapped, translated and NAT64 forms), or every address of an allowed
  host name. Allowing a name trusts whatever its DNS answers.

Hosts are compared in one canonical form (``normalize_host``): IP literals in any spelling that
``inet_aton`` or the WHATWG URL standard accept (``0x7f000001``, ``2130706433``, ``0177.0.0.1``,
``127.1``, ``[::1]``) become the address ``ipaddress`` prints; names are lower-cased, IDNA (UTS 46)
encoded, without their trailing dot; after IDNA mapping a name may turn out to be an address
(full-width ``１２７.０.０.１``) and is then treated as one.

A refusal says why. For an IP literal it names the address; for a host name it gives only the
kind of address the name resolved to, so the API does not map our internal DNS for a caller.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import idna

from vdup.errors import FetchRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_LINK_CHARS = 4096

_net = ipaddress.ip_network

# First match wins, so the narrow entries come before the ranges that contain them.
_V4_SPECIAL: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (ipaddress.IPv4Network("0.0.0.0/32"), "the unspecified address"),
    (ipaddress.IPv4Network("0.0.0.0/8"), "a 'this network' address (0.0.0.0/8)"),
    (ipaddress.IPv4Network("10.0.0.0/8"), "a private address (RFC 1918)"),
    (
        ipaddress.IPv4Network("100.64.0.0/10"),
        "a shared address space address (100.64.0.0/10, carrier-grade NAT)",
    ),
    (ipaddress.IPv4Network("127.0.0.0/8"), "a loopback address"),
    (ipaddress.IPv4Network("169.254.169.254/32"), "the cloud metadata address (link-local)"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "a link-local address"),
    (ipaddress.IPv4Network("172.16.0.0/12"), "a private address (RFC 1918)"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol assignment address (192.0.0.0/24)"),
    (ipaddress.IPv4Network("192.0.2.0/24"), "a documentation address (RFC 5737)"),
    (ipaddress.IPv4Network("192.88.99.0/24"), "a 6to4 relay anycast address (RFC 7526)"),
    (ipaddress.IPv4Network("192.168.0.0/16"), "a private address (RFC 1918)"),
    (ipaddress.IPv4Network("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)"),
    (ipaddress.IPv4Network("198.51.100.0/24"), "a documentation address (RFC 5737)"),
    (ipaddress.IPv4Network("203.0.113.0/24"), "a documentation address (RFC 5737)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "a multicast address"),
    (ipaddress.IPv4Network("255.255.255.255/32"), "the broadcast address"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "a reserved address (240.0.0.0/4)"),
)

_V6_SPECIAL: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("::/128"), "the unspecified address"),
    (ipaddress.IPv6Network("::1/128"), "a loopback address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address (RFC 8215)"),
    (ipaddress.IPv6Network("100::/64"), "a discard-only address (RFC 6666)"),
    (ipaddress.IPv6Network("2001:2::/48"), "a benchmarking address (2001:2::/48)"),
    (ipaddress.IPv6Network("2001::/23"), "an IETF protocol assignment address (2001::/23)"),
    (ipaddress.IPv6Network("2001:db8::/32"), "a documentation address (RFC 3849)"),
    (ipaddress.IPv6Network("3fff::/20"), "a documentation address (RFC 9637)"),
    (ipaddress.IPv6Network("fd00:ec2::254/128"), "the cloud metadata address (unique local)"),
    (ipaddress.IPv6Network("fc00::/7"), "a private (unique local) address (fc00::/7)"),
    (ipaddress.IPv6Network("fe80::/10"), "a link-local address"),
    (ipaddress.IPv6Network("fec0::/10"), "a private (site-local) address (fec0::/10)"),
    (ipaddress.IPv6Network("ff00::/8"), "a multicast address"),
)

_V6_GLOBAL_UNICAST = _net("2000::/3")
_MAPPED = _net("::ffff:0:0/96")
_TRANSLATED = _net("::ffff:0:0:0/96")
_COMPATIBLE = _net("::/96")
_NAT64 = _net("64:ff9b::/96")
_SIX_TO_FOUR = _net("2002::/16")
_TEREDO = _net("2001::/32")

# Forms whose packets reach the embedded IPv4 host itself.
_SAME_HOST_FORMS = frozenset({"an IPv4-mapped", "an IPv4-translated", "a NAT64"})

_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9A-Fa-f]*|[0-9]+)$")
_HEX_PART = re.compile(r"^0[xX][0-9A-Fa-f]*$")
_OCTAL_PART = re.compile(r"^0[0-7]+$")
_DECIMAL_PART = re.compile(r"^(?:0|[1-9][0-9]*)$")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


def _show(text: str) -> str:
    """User input quoted for a message, cut so that a long link cannot flood it."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _refuse(reason: str) -> FetchRefused:
    return FetchRefused(f"link refused: {reason}")


def _v4_refusal(address: ipaddress.IPv4Address) -> str | None:
    for network, why in _V4_SPECIAL:
        if address in network:
            return why
    if not address.is_global:
        return "not a globally routable address"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of the form carrying it."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _MAPPED:
        return [("an IPv4-mapped", low32)]
    if address in _TRANSLATED:
        return [("an IPv4-translated", low32)]
    if address in _COMPATIBLE and int(address) > 1:
        return [("an IPv4-compatible", low32)]
    if address in _NAT64:
        return [("a NAT64", low32)]
    if address in _SIX_TO_FOUR:
        return [("a 6to4", ipaddress.IPv4Address((int(address) >> 80) & 0xFFFF_FFFF))]
    if address in _TEREDO:
        server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFF_FFFF)
        client = ipaddress.IPv4Address(~int(address) & 0xFFFF_FFFF)
        return [("a Teredo", server), ("a Teredo", client)]
    return []


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be contacted by default, as a phrase that completes "X is ..."
    (e.g. ``"a loopback address"``), or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_refusal(address)
    embedded = _embedded_v4(address)
    for form, v4 in embedded:
        why = _v4_refusal(v4)
        if why is not None:
            return f"{form} form of {why}"
    if embedded and embedded[0][0] in _SAME_HOST_FORMS:
        return None
    for network, why in _V6_SPECIAL:
        if address in network:
            return why
    if address not in _V6_GLOBAL_UNICAST or not address.is_global:
        return "not a global unicast address"
    return None


def _inet_aton(text: str, host: str) -> ipaddress.IPv4Address:
    """IPv4 address of a numeric host in ``inet_aton`` form: 1 to 4 dot-separated parts, each
    decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        raise _refuse(f"{_show(host)} is not a valid IPv4 address")
    values = []
    for part in parts:
        if len(part) > 34:
            raise _refuse(f"{_show(host)} is not a valid IPv4 address")
        if _HEX_PART.match(part):
            values.append(int(part[2:], 16) if len(part) > 2 else 0)
        elif _OCTAL_PART.match(part):
            values.append(int(part, 8))
        elif _DECIMAL_PART.match(part):
            values.append(int(part))
        else:
            raise _refuse(f"{_show(host)} is not a valid IPv4 address")
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise _refuse(f"{_show(host)} is not a valid IPv4 address")
    number = sum(v << (8 * (3 - i)) for i, v in enumerate(head)) + last
    return ipaddress.IPv4Address(number)


def parse_ip_host(host: str) -> IPAddress | None:
    """The address that a URL host denotes when it is an IP literal, else None (a name).

    Accepts IPv6 with or without brackets (a ``%zone`` suffix is kept) and every IPv4 spelling of
    ``inet_aton``: ``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``, an optional trailing
    dot. As in the WHATWG URL standard, a host whose last label is numeric is an IPv4 literal, so
    ``1.2.3.4.5`` or ``127.0.0.256`` raise ``FetchRefused`` instead of going to DNS.
    """
    text = host
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if ":" not in text:
            raise _refuse(f"{_show(host)} is not a valid IPv6 address")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise _refuse(f"{_show(host)} is not a valid IPv6 address") from None
    if text.endswith("."):
        text = text[:-1]
    if not _NUMERIC_LABEL.match(text.rsplit(".", 1)[-1]):
        return None
    return _inet_aton(text, host)


def normalize_host(host: str) -> str:
    """The canonical text of a URL host, used to compare hosts with the allow-list.

    IP literals (see ``parse_ip_host``) become the address as ``ipaddress`` prints it; names are
    IDNA (UTS 46) encoded when not ASCII, lower-cased and stripped of one trailing dot. Raises
    ``FetchRefused`` when ``host`` is neither a valid address nor a valid DNS name.
    """
    address = parse_ip_host(host)
    if address is not None:
        return str(address)
    name = host[:-1] if host.endswith(".") else host
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise _refuse(f"{_show(host)} is not a valid host name") from None
        address = parse_ip_host(name)
        if address is not None:
            return str(address)
    name = name.lower()
    if len(name) > 253 or not _NAME.match(name):
        raise _refuse(f"{_show(host)} is not a valid host name")
    return name


@dataclass(frozen=True)
class Link:
    """A link that passed the URL rules of ``check_url``."""

    url: str
    scheme: str  # "http" or "https"
    host: str  # canonical, see normalize_host
    port: int  # 1..65535, the scheme's default when the link gives none


def check_url(url: str) -> Link:
    """Checks the URL rules (not the address: that needs resolution) and returns the parts.

    Refused with ``FetchRefused``: longer than ``MAX_LINK_CHARS``; whitespace, control characters
    or backslashes anywhere (parsers disagree about them); a scheme other than http/https;
    credentials (``user:password@``); no host; an invalid host or port.
    """
    if len(url) > MAX_LINK_CHARS:
        raise _refuse(f"the link is longer than {MAX_LINK_CHARS} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise _refuse("the link contains whitespace or control characters")
    if "\\" in url:
        raise _refuse("the link contains a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(f"{_show(url)} is not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        if not scheme:
            raise _refuse(f"{_show(url)} is not an absolute http(s) URL")
        raise _refuse(f"scheme {_show(scheme)} is not http or https")
    if "@" in parts.netloc:
        raise _refuse("credentials (user:password@) are not allowed in a link")
    if not parts.hostname:
        raise _refuse(f"{_show(url)} has no host")
    if port == 0:
        raise _refuse("port 0 is not a valid port")
    return Link(url, scheme, normalize_host(parts.hostname), port or DEFAULT_PORTS[scheme])


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public destinations the operator allows; the default allows none.

    ``hosts``: canonical host names (``normalize_host``) whose every address is allowed.
    ``networks``: address ranges allowed whatever name led to them.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    def __post_init__(self) -> None:
        for host in self.hosts:
            if normalize_host(host) != host or parse_ip_host(host) is not None:
                raise ValueError(f"{host!r} is not a canonical host name; use from_allow_list")
        for network in self.networks:
            if not isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise ValueError(f"{network!r} is not an ipaddress network")

    @classmethod
    def from_allow_list(cls, entries: Iterable[str] | str) -> AddressPolicy:
        """Policy from allow-list entries: addresses, CIDR networks and host names, e.g.
        ``["127.0.0.1", "10.0.0.0/8", "files.example.com"]``; a string is split on commas and
        whitespace. Raises ValueError naming the first bad entry (a CIDR with host bits set is
        one: ``10.0.0.5/8``)."""
        if isinstance(entries, str):
            entries = re.split(r"[\s,]+", entries)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
                    continue
                address = parse_ip_host(entry)
                if address is not None:
                    networks.append(ipaddress.ip_network(address))
                else:
                    hosts.add(normalize_host(entry))
            except (ValueError, FetchRefused) as exc:
                raise ValueError(f"bad allow-list entry {entry!r}: {exc}") from None
        return cls(frozenset(hosts), tuple(networks))

    def allows_address(self, address: IPAddress) -> bool:
        """True when ``address`` is in an allowed network, directly or as the IPv4 address that
        its mapped, translated or NAT64 form reaches."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            candidates += [v4 for form, v4 in _embedded_v4(address) if form in _SAME_HOST_FORMS]
        return any(c in network for c in candidates for network in self.networks)

    def check(self, host: str, addresses: Sequence[str]) -> tuple[IPAddress, ...]:
        """Checks the addresses that ``host`` resolved to; returns them parsed, in order.

        ``host``: the URL host as given (any spelling); ``addresses``: IP address strings, e.g.
        from ``getaddrinfo``. Every address must pass, so one private answer among public ones
        refuses the host. Raises ``FetchRefused`` saying why; never does I/O.
        """
        name = normalize_host(host)
        if not addresses:
            raise _refuse(f"{name} has no address")
        parsed: list[IPAddress] = []
        for text in addresses:
            try:
                parsed.append(ipaddress.ip_address(text))
            except ValueError:
                raise _refuse(f"{name} resolved to something that is not an IP address") from None
        if name in self.hosts:
            return tuple(parsed)
        literal = parse_ip_host(name)
        for address in parsed:
            if self.allows_address(address):
                continue
            why = refusal_reason(address)
            if why is None:
                continue
            if literal is not None:
                given = host.strip("[]")
                shown = str(address) if given == str(address) else f"{given} ({address})"
                raise _refuse(f"{shown} is {why}")
            raise _refuse(f"{name} resolves to {why}")
        return tuple(parsed)


DEFAULT_POLICY = AddressPolicy()
