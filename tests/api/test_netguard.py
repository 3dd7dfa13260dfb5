"""The pure address policy: every non-public address class is refused on resolved addresses, no
network involved (the fetcher tests only ever connect to loopback)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from vdup.api.netguard import (
    DEFAULT_POLICY,
    MAX_LINK_CHARS,
    AddressPolicy,
    Link,
    check_url,
    normalize_host,
    parse_ip_host,
    refusal_reason,
)
from vdup.errors import FetchRefused

pytestmark = pytest.mark.timeout(10)


def teredo(server: str, client: str) -> str:
    """A Teredo address (2001::/32) carrying ``server`` and the obfuscated ``client``."""
    s = int(ipaddress.IPv4Address(server))
    c = int(ipaddress.IPv4Address(client)) ^ 0xFFFF_FFFF
    return str(ipaddress.IPv6Address((0x2001_0000 << 96) | (s << 64) | (0x8000_63BF << 32) | c))


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "shared address space"),
    ("100.127.255.255", "shared address space"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("203.0.113.9", "documentation"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.88.99.1", "6to4 relay"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("4000::1", "not a global unicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of a loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of the cloud metadata"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of a private"),
    ("::ffff:0.0.0.0", "IPv4-mapped form of the unspecified"),
    ("::ffff:0:127.0.0.1", "IPv4-translated form of a loopback"),
    ("::127.0.0.1", "IPv4-compatible form of a loopback"),
    ("::8.8.8.8", "not a global unicast"),
    ("64:ff9b::10.0.0.1", "NAT64 form of a private"),
    ("64:ff9b::169.254.169.254", "NAT64 form of the cloud metadata"),
    ("2002:7f00:1::", "6to4 form of a loopback"),
    ("2002:a9fe:a9fe::1", "6to4 form of the cloud metadata"),
    (teredo("8.8.8.8", "127.0.0.1"), "Teredo form of a loopback"),
    (teredo("10.1.2.3", "8.8.8.8"), "Teredo form of a private"),
    (teredo("8.8.8.8", "8.8.4.4"), "IETF protocol assignment"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_address_refused_with_reason(address: str, why: str) -> None:
    assert why in (refusal_reason(ipaddress.ip_address(address)) or "")
    with pytest.raises(FetchRefused, match=why) as caught:
        DEFAULT_POLICY.check("videos.example.com", [address])
    assert caught.value.status_code == 400
    assert caught.value.message.startswith("link refused: videos.example.com resolves to ")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_address_passes(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None
    assert DEFAULT_POLICY.check("videos.example.com", [address]) == (ipaddress.ip_address(address),)


def test_name_refusal_does_not_reveal_the_resolved_address() -> None:
    with pytest.raises(FetchRefused) as caught:
        DEFAULT_POLICY.check("db.internal.example", ["10.20.30.40"])
    assert caught.value.message == (
        "link refused: db.internal.example resolves to a private address (RFC 1918)"
    )


def test_literal_refusal_names_the_address() -> None:
    with pytest.raises(FetchRefused) as caught:
        DEFAULT_POLICY.check("10.0.0.5", ["10.0.0.5"])
    assert caught.value.message == "link refused: 10.0.0.5 is a private address (RFC 1918)"
    with pytest.raises(FetchRefused) as caught:
        DEFAULT_POLICY.check("0x7f000001", ["127.0.0.1"])
    assert caught.value.message == "link refused: 0x7f000001 (127.0.0.1) is a loopback address"


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(FetchRefused, match="private"):
        DEFAULT_POLICY.check("cdn.example.com", ["93.184.216.34", "10.0.0.1", "1.1.1.1"])
    with pytest.raises(FetchRefused, match="loopback"):
        DEFAULT_POLICY.check("cdn.example.com", ["2606:4700:4700::1111", "::1"])


def test_no_or_malformed_answers_fail_closed() -> None:
    with pytest.raises(FetchRefused, match="no address"):
        DEFAULT_POLICY.check("cdn.example.com", [])
    with pytest.raises(FetchRefused, match="not an IP address"):
        DEFAULT_POLICY.check("cdn.example.com", ["not-an-ip"])
    with pytest.raises(FetchRefused, match="not an IP address"):
        DEFAULT_POLICY.check("cdn.example.com", ["127.0.0.1 "])


def test_default_policy_allows_nothing_private_and_is_frozen() -> None:
    assert AddressPolicy() == DEFAULT_POLICY
    assert DEFAULT_POLICY.hosts == frozenset() and DEFAULT_POLICY.networks == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_POLICY.hosts = frozenset({"x"})  # type: ignore[misc]


class TestAllowList:
    policy = AddressPolicy.from_allow_list(["127.0.0.1", "10.0.0.0/8", "Files.Example.com."])

    def test_parses_addresses_networks_and_canonical_names(self) -> None:
        assert self.policy.hosts == frozenset({"files.example.com"})
        assert self.policy.networks == (
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("10.0.0.0/8"),
        )
        same = AddressPolicy.from_allow_list(" 127.0.0.1,10.0.0.0/8\nfiles.example.com ")
        assert same == self.policy

    def test_allowed_address_and_network(self) -> None:
        assert self.policy.check("127.0.0.1", ["127.0.0.1"])
        assert self.policy.check("2130706433", ["127.0.0.1"])
        assert self.policy.check("svc.example", ["10.9.8.7"])
        assert self.policy.check("svc.example", ["::ffff:10.9.8.7"])
        assert self.policy.check("svc.example", ["64:ff9b::a09:807"])

    def test_allowing_one_address_keeps_its_neighbours_refused(self) -> None:
        with pytest.raises(FetchRefused, match="127.0.0.2 is a loopback"):
            self.policy.check("127.0.0.2", ["127.0.0.2"])
        with pytest.raises(FetchRefused, match="loopback"):
            self.policy.check("::1", ["::1"])
        with pytest.raises(FetchRefused, match="private"):
            self.policy.check("svc.example", ["192.168.0.1"])
        with pytest.raises(FetchRefused, match="metadata"):
            self.policy.check("svc.example", ["169.254.169.254"])

    def test_allowed_name_allows_any_of_its_addresses(self) -> None:
        for host in ("files.example.com", "FILES.example.COM.", "files.example.com."):
            assert self.policy.check(host, ["192.168.1.10", "169.254.169.254"])

    def test_allowed_name_does_not_allow_others_on_the_same_address(self) -> None:
        with pytest.raises(FetchRefused, match="private"):
            self.policy.check("evil.example.com", ["192.168.1.10"])
        with pytest.raises(FetchRefused, match="private"):
            self.policy.check("files.example.com.evil.test", ["192.168.1.10"])
        with pytest.raises(FetchRefused, match="192.168.1.10 is a private"):
            self.policy.check("192.168.1.10", ["192.168.1.10"])

    @pytest.mark.parametrize("entry", ["10.0.0.5/8", "999.1.1.1", "not a host", "a..b", "[::1"])
    def test_bad_entry_is_a_value_error_naming_it(self, entry: str) -> None:
        with pytest.raises(ValueError, match="bad allow-list entry"):
            AddressPolicy.from_allow_list([entry])

    def test_direct_construction_requires_canonical_names(self) -> None:
        with pytest.raises(ValueError, match="canonical"):
            AddressPolicy(hosts=frozenset({"Files.Example.com"}))
        with pytest.raises(ValueError, match="canonical"):
            AddressPolicy(hosts=frozenset({"127.0.0.1"}))


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("LocalHost.", "localhost"),
        ("Files.Example.COM", "files.example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("１２７.０.０.１", "127.0.0.1"),
        ("BÜCHER.de.", "xn--bcher-kva.de"),
    ],
)
def test_normalize_host_forms(host: str, canonical: str) -> None:
    assert normalize_host(host) == canonical


@pytest.mark.parametrize(
    "host",
    [
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "[::1]",
        "::ffff:127.0.0.1",
        "１２７.０.０.１",
        "127.000.000.001",
        "[::127.0.0.1]",
        "localhost",
    ],
)
def test_loopback_spellings_are_refused_once_resolved(host: str) -> None:
    literal = parse_ip_host(normalize_host(host))
    resolved = [str(literal)] if literal is not None else ["127.0.0.1"]
    with pytest.raises(FetchRefused, match="loopback"):
        DEFAULT_POLICY.check(host, resolved)


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",
        "127.0.0.256",
        "256.1",
        "0x1g.0.0.1",
        "08.0.0.1",
        "4294967296",
        "[127.0.0.1]",
        "[::1:]",
        "%31%32%37.0.0.1",
        "exa mple.com",
        "a..b",
        "-a.example",
        "",
        ".",
        "x" * 64 + ".com",
        "a_b$.com",
        "9" * 5000,
    ],
)
def test_invalid_hosts_are_refused(host: str) -> None:
    with pytest.raises(FetchRefused, match="not a valid"):
        normalize_host(host)


def test_names_are_not_ip_literals() -> None:
    assert parse_ip_host("files.example.com") is None
    assert parse_ip_host("1e5") is None
    assert parse_ip_host("0x7f000001.example.com") is None


class TestCheckUrl:
    def test_accepts_http_and_https(self) -> None:
        assert check_url("https://Files.Example.com:8443/v.mp4?x=1") == Link(
            "https://Files.Example.com:8443/v.mp4?x=1", "https", "files.example.com", 8443
        )
        assert check_url("HTTP://[::1]/v.mp4") == Link("HTTP://[::1]/v.mp4", "http", "::1", 80)
        assert check_url("https://x.example/").port == 443
        assert check_url("http://0x7f000001:65535/").host == "127.0.0.1"

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("ftp://files.example.com/v.mp4", "scheme 'ftp' is not http or https"),
            ("file:///etc/passwd", "scheme 'file'"),
            ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher'"),
            ("javascript:alert(1)", "scheme 'javascript'"),
            ("data:video/mp4;base64,AAAA", "scheme 'data'"),
            ("//files.example.com/v.mp4", "not an absolute"),
            ("/v.mp4", "not an absolute"),
            ("http://user:pw@files.example.com/", "credentials"),
            ("http://user@files.example.com/", "credentials"),
            ("http://@files.example.com/", "credentials"),
            ("http://files.example.com@127.0.0.1/", "credentials"),
            ("http:///v.mp4", "no host"),
            ("http://:80/v.mp4", "no host"),
            ("http://files.example.com:99999/", "bad host or port"),
            ("http://files.example.com:http/", "bad host or port"),
            ("http://files.example.com:0/", "port 0"),
            ("http://[::1/", "bad host or port"),
            ("http://files.example.com/ v.mp4", "whitespace"),
            ("http://files.example.com/\tv.mp4", "whitespace"),
            ("http://files.example.com/\nv.mp4", "whitespace"),
            ("\x00http://files.example.com/", "control"),
            ("http://127.0.0.1\\@files.example.com/", "backslash"),
            ("http://files.example.com/" + "a" * MAX_LINK_CHARS, "longer than"),
            ("http://1.2.3.4.5/", "not a valid IPv4"),
            ("http://exa$mple.com/", "not a valid host name"),
        ],
    )
    def test_refuses_with_reason(self, url: str, why: str) -> None:
        with pytest.raises(FetchRefused, match=why):
            check_url(url)
