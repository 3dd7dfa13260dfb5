"""The link fetcher against a hostile HTTP server on loopback.

Safety of the tests themselves: the fetcher's socket layer is ``LoopbackOnly``, which refuses (and
records) any connect that is not to a loopback IP literal, and host names come from ``FakeDNS``
(only ``localhost`` goes to the system resolver, i.e. /etc/hosts). So even a broken guard cannot
make these tests touch a real network: it makes them fail. Private, link-local and metadata
addresses appear only as redirect targets or DNS answers that the guard must refuse before any
connect; their classification is tested purely in test_netguard.py.

The server listens on 127.0.0.1, 127.0.0.2 and ::1 at one port, so a loopback trick that slips
through the guard shows up as a connection there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import httpcore
import pytest

from vdup.api.fetch import (
    FetchSettings,
    HttpFetcher,
    fetch_bytes,
    fetch_settings_from,
    system_resolver,
)
from vdup.api.netguard import AddressPolicy
from vdup.errors import FetchFailed, FetchRefused, FetchTimeout, MediaTooLarge

pytestmark = pytest.mark.timeout(15)

VIDEO = bytes(range(256)) * 400  # 100 KiB, recognisable
KiB = 1024

# ---------------------------------------------------------------------------------------------
# The hostile server


@dataclass
class Seen:
    where: str  # listener address that accepted the connection
    path: str
    headers: dict[str, str]  # lower-case names


Route = Callable[["HostileServer", socket.socket], None]


class HostileServer:
    """HTTP/1.1 on loopback that misbehaves on purpose; one request per connection, then close.

    ``routes`` maps a path (query ignored) to a function writing raw bytes to the socket. Every
    TCP connection is recorded in ``connections`` and every request in ``requests``.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.stop = threading.Event()
        self.connections: list[str] = []
        self.requests: list[Seen] = []
        self.sni: list[str | None] = []
        self.routes: dict[str, Route] = {"/video.mp4": ok(VIDEO)}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._listeners = self._bind()
        self.port = self._listeners[0].getsockname()[1]
        self.has_ipv6 = len(self._listeners) == 3
        for listener in self._listeners:
            self._spawn(self._accept_loop, listener)

    @staticmethod
    def _bind() -> list[socket.socket]:
        for _ in range(50):
            first = socket.create_server(("127.0.0.1", 0))
            port = first.getsockname()[1]
            listeners = [first]
            try:
                listeners.append(socket.create_server(("127.0.0.2", port)))
                if socket.has_ipv6:
                    try:
                        listeners.append(
                            socket.create_server(
                                ("::1", port), family=socket.AF_INET6, dualstack_ipv6=False
                            )
                        )
                    except OSError as exc:
                        if exc.errno == 98:  # EADDRINUSE: try another port
                            raise
                return listeners
            except OSError:
                for listener in listeners:
                    listener.close()
        raise RuntimeError("no free loopback port on 127.0.0.1, 127.0.0.2 and ::1")

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        where = listener.getsockname()[0]
        listener.settimeout(0.02)
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections.append(where)
                self._open.add(conn)
            self._spawn(self._serve, conn, where)

    def _serve(self, conn: socket.socket, where: str) -> None:
        sock = conn
        try:
            conn.settimeout(5)
            if self.tls is not None:
                sock = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._open.add(sock)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16 * KiB:
                data = sock.recv(4096)
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1].split("?", 1)[0]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            with self._lock:
                self.requests.append(Seen(where, path, headers))
            self.routes.get(path, status(404))(self, sock)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(sock)
                self._open.discard(conn)
            sock.close()
            conn.close()

    def close(self) -> None:
        self.stop.set()
        for listener in self._listeners:
            listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)
        assert not any(t.is_alive() for t in threads), "hostile server threads did not stop"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]


def _head(status_line: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status_line}",
        *(f"{k}: {v}" for k, v in headers.items()),
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok(body: bytes, **headers: str) -> Route:
    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head("200 OK", {"Content-Length": str(len(body)), **headers}) + body)

    return route


def status(code: int) -> Route:
    def route(server: HostileServer, sock: socket.socket) -> None:
        body = f"status {code}".encode()
        sock.sendall(_head(f"{code} Whatever", {"Content-Length": str(len(body))}) + body)

    return route


def redirect(location: str, code: int = 302) -> Route:
    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head(f"{code} Moved", {"Location": location, "Content-Length": "0"}))

    return route


def declared(length: int, body: bytes) -> Route:
    """Declares ``length`` bytes, sends ``body`` (longer or shorter), then closes."""

    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head("200 OK", {"Content-Length": str(length)}) + body)

    return route


def stall(length: int) -> Route:
    """Headers declaring ``length`` bytes, then silence until the test ends."""

    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head("200 OK", {"Content-Length": str(length)}))
        server.stop.wait(10)

    return route


def mute() -> Route:
    """Reads the request and never answers."""

    def route(server: HostileServer, sock: socket.socket) -> None:
        server.stop.wait(10)

    return route


def drip(length: int, every_s: float) -> Route:
    """One byte every ``every_s`` seconds: no single read is slow, the whole is."""

    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head("200 OK", {"Content-Length": str(length)}))
        for _ in range(length):
            if server.stop.wait(every_s):
                return
            sock.sendall(b"x")

    return route


def chunked(total: int | None, chunk: int = 64 * KiB) -> Route:
    """A chunked body of ``total`` bytes, or endless (for at most 10 s) when None."""

    def route(server: HostileServer, sock: socket.socket) -> None:
        sock.sendall(_head("200 OK", {"Transfer-Encoding": "chunked"}))
        sent, until = 0, time.monotonic() + 10
        while not server.stop.is_set() and time.monotonic() < until:
            n = chunk if total is None else min(chunk, total - sent)
            if n == 0:
                break
            sock.sendall(b"%x\r\n" % n + b"v" * n + b"\r\n")
            sent += n
        sock.sendall(b"0\r\n\r\n")

    return route


# ---------------------------------------------------------------------------------------------
# The test's network: loopback sockets only, fake DNS


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The socket layer under the guard: connects only to loopback IP literals, records all."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []
        self.violations: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.violations.append(host)
            raise AssertionError(f"the fetcher tried to connect to {host}:{port}")
        self.connects.append((host, port))
        return await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        self.violations.append(path)
        raise AssertionError(f"the fetcher tried to open the unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@dataclass
class FakeDNS:
    """Answers from a table; the n-th lookup of a name gets its n-th answer (the last repeats)."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    delay_s: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if host.rstrip(".").lower() == "localhost":
            return await system_resolver("localhost", port)  # /etc/hosts, never a DNS server
        table = self.answers.get(host)
        if table is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        n = sum(1 for call in self.calls if call == host) - 1
        return table[min(n, len(table) - 1)]


@pytest.fixture
def server() -> Iterator[HostileServer]:
    srv = HostileServer()
    yield srv
    srv.close()


@pytest.fixture
def wire() -> Iterator[LoopbackOnly]:
    backend = LoopbackOnly()
    yield backend
    assert backend.violations == [], "a connect went past the guard to a non-loopback address"


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


def settings(allow: tuple[str, ...] = ("127.0.0.1",), **overrides: object) -> FetchSettings:
    values: dict = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0, "total_timeout_s": 8.0}
    values.update(overrides)
    return FetchSettings(policy=AddressPolicy.from_allow_list(allow), **values)


def fetch(url: str, wire: LoopbackOnly, dns: FakeDNS, **kwargs: object) -> bytes:
    return fetch_all([url], wire, dns, **kwargs)[0]


def fetch_all(urls: list[str], wire: LoopbackOnly, dns: FakeDNS, **kwargs: object) -> list:
    """Fetches ``urls`` with one fetcher; the results are bytes or the error raised."""

    async def go() -> list:
        results: list = []
        async with HttpFetcher(settings(**kwargs), resolver=dns, network_backend=wire) as f:
            for url in urls:
                try:
                    results.append(await f.fetch(url))
                except Exception as exc:  # noqa: BLE001 - handed back for the test to judge
                    results.append(exc)
        return results

    results = asyncio.run(go())
    if len(urls) == 1 and isinstance(results[0], Exception):
        raise results[0]
    return results


# ---------------------------------------------------------------------------------------------
# Serving


def test_downloads_into_memory(server: HostileServer, wire: LoopbackOnly, dns: FakeDNS) -> None:
    data = fetch(f"http://127.0.0.1:{server.port}/video.mp4", wire, dns)
    assert data == VIDEO
    assert wire.connects == [("127.0.0.1", server.port)]
    [seen] = server.requests
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["user-agent"].startswith("vdup-fetch/")
    assert seen.headers["accept-encoding"] == "identity"
    assert "authorization" not in seen.headers and "cookie" not in seen.headers


def test_one_fetcher_serves_many_links_and_keeps_no_cookies(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/cookie"] = ok(b"hi", **{"Set-Cookie": "session=secret; Path=/"})
    base = f"http://127.0.0.1:{server.port}"
    assert fetch_all([f"{base}/cookie", f"{base}/video.mp4", f"{base}/video.mp4"], wire, dns) == [
        b"hi",
        VIDEO,
        VIDEO,
    ]
    assert [("cookie" in seen.headers) for seen in server.requests] == [False, False, False]


def test_name_is_pinned_to_the_address_that_was_checked(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    """DNS rebinding: the name answers an allowed address, then a refused one. The connection
    goes to the address checked, under the original Host header, and the name is resolved once
    per connection; the rebound answer is refused before any connect."""
    dns.answers["video.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    url = f"http://video.test:{server.port}/video.mp4"
    first, second = fetch_all([url, url], wire, dns)
    assert first == VIDEO
    assert isinstance(second, FetchRefused)
    assert second.message == "link refused: video.test resolves to a loopback address"
    assert dns.calls == ["video.test", "video.test"]
    assert wire.connects == [("127.0.0.1", server.port)]
    assert server.connections == ["127.0.0.1"]
    assert server.requests[0].headers["host"] == f"video.test:{server.port}"


def test_allow_listed_name_may_resolve_to_a_private_address(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    dns.answers["video.test"] = [["127.0.0.1"]]
    dns.answers["other.test"] = [["127.0.0.1"]]
    results = fetch_all(
        [
            f"http://video.test:{server.port}/video.mp4",
            f"http://other.test:{server.port}/video.mp4",
        ],
        wire,
        dns,
        allow=("video.test",),
    )
    assert results[0] == VIDEO
    assert isinstance(results[1], FetchRefused)
    assert "other.test resolves to a loopback address" in results[1].message
    assert server.connections == ["127.0.0.1"]


def test_one_refused_answer_refuses_the_name(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    dns.answers["mixed.test"] = [["127.0.0.1", "10.0.0.5"]]
    with pytest.raises(FetchRefused) as caught:
        fetch(f"http://mixed.test:{server.port}/video.mp4", wire, dns)
    assert caught.value.message == (
        "link refused: mixed.test resolves to a private address (RFC 1918)"
    )
    assert server.connections == [] and wire.connects == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.2",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "0x7f000001",
        "2130706433",
        "127.1",
        "0x7f.1",
        "0177.0.0.1",
        "017700000001",
        "localhost",
        "LOCALHOST.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:2]",
        "[::127.0.0.1]",
        "１２７.０.０.１",
    ],
)
def test_loopback_tricks_are_refused_before_connecting(
    host: str, server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    """Loopback is not allow-listed here; every spelling of it is refused without a connect."""
    with pytest.raises(FetchRefused, match="loopback|not a valid URL") as caught:
        fetch(f"http://{host}:{server.port}/video.mp4", wire, dns, allow=())
    assert caught.value.status_code == 400
    assert wire.connects == []
    assert server.connections == []


def test_unknown_name_fails_without_connecting(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    with pytest.raises(FetchFailed, match="cannot resolve host nowhere.test") as caught:
        fetch(f"http://nowhere.test:{server.port}/video.mp4", wire, dns)
    assert caught.value.status_code == 502
    assert wire.connects == []


def test_slow_dns_trips_the_connect_deadline(server: HostileServer, wire: LoopbackOnly) -> None:
    slow = FakeDNS({"video.test": [["127.0.0.1"]]}, delay_s=5)
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout, match="could not connect to video.test") as caught:
        fetch(f"http://video.test:{server.port}/video.mp4", wire, slow, connect_timeout_s=0.2)
    assert time.monotonic() - t0 < 2
    assert caught.value.status_code == 504
    assert wire.connects == []


# ---------------------------------------------------------------------------------------------
# Redirects


def test_follows_a_redirect(server: HostileServer, wire: LoopbackOnly, dns: FakeDNS) -> None:
    server.routes["/r1"] = redirect("/r2", 301)
    server.routes["/r2"] = redirect(f"http://127.0.0.1:{server.port}/r3", 307)
    server.routes["/r3"] = redirect("video.mp4", 308)
    assert fetch(f"http://127.0.0.1:{server.port}/r1", wire, dns) == VIDEO
    assert server.paths() == ["/r1", "/r2", "/r3", "/video.mp4"]


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://127.0.0.2:{port}/video.mp4", "127.0.0.2 is a loopback address"),
        ("http://[::1]:{port}/video.mp4", "::1 is a loopback address"),
        ("http://0x7f000002:{port}/video.mp4", "0x7f000002 (127.0.0.2) is a loopback"),
        ("http://loop.test:{port}/video.mp4", "loop.test resolves to a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
        (
            "http://metadata.test/computeMetadata/v1/",
            "metadata.test resolves to the cloud metadata",
        ),
        ("http://10.0.0.5:{port}/", "10.0.0.5 is a private address"),
        ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped form of the cloud metadata"),
        ("http://0xa9fea9fe/", "0xa9fea9fe (169.254.169.254) is the cloud metadata"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:{port}/_x", "scheme 'gopher'"),
        ("http://user:pw@127.0.0.1:{port}/video.mp4", "credentials"),
    ],
)
def test_redirect_to_a_refused_target_is_not_followed(
    target: str, why: str, server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    dns.answers["metadata.test"] = [["169.254.169.254"]]
    dns.answers["loop.test"] = [["127.0.0.2", "::1"]]
    server.routes["/r"] = redirect(target.format(port=server.port))
    with pytest.raises(FetchRefused, match=why.replace("(", r"\(").replace(")", r"\)")):
        fetch(f"http://127.0.0.1:{server.port}/r", wire, dns)
    assert server.paths() == ["/r"]
    assert server.connections == ["127.0.0.1"]
    assert wire.connects == [("127.0.0.1", server.port)]


def test_redirect_chain_is_bounded(server: HostileServer, wire: LoopbackOnly, dns: FakeDNS) -> None:
    for i in range(1, 5):
        server.routes[f"/hop{i}"] = redirect(f"/hop{i - 1}")
    server.routes["/hop0"] = ok(VIDEO)
    base = f"http://127.0.0.1:{server.port}"
    three, four = fetch_all([f"{base}/hop3", f"{base}/hop4"], wire, dns, max_redirects=3)
    assert three == VIDEO
    assert isinstance(four, FetchFailed) and four.message == "link failed: more than 3 redirects"
    assert server.paths() == [
        "/hop3",
        "/hop2",
        "/hop1",
        "/hop0",
        "/hop4",
        "/hop3",
        "/hop2",
        "/hop1",
    ]


def test_redirect_loop_stops(server: HostileServer, wire: LoopbackOnly, dns: FakeDNS) -> None:
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(FetchFailed, match="more than 5 redirects"):
        fetch(f"http://127.0.0.1:{server.port}/loop", wire, dns)
    assert server.paths() == ["/loop"] * 6


def test_no_redirects_when_max_is_zero(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/r"] = redirect("/video.mp4")
    with pytest.raises(FetchFailed, match="more than 0 redirects"):
        fetch(f"http://127.0.0.1:{server.port}/r", wire, dns, max_redirects=0)


def test_redirect_without_location_fails(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/r"] = status(302)
    with pytest.raises(FetchFailed, match="302 without a Location"):
        fetch(f"http://127.0.0.1:{server.port}/r", wire, dns)


# ---------------------------------------------------------------------------------------------
# Deadlines


def test_silent_body_trips_the_read_deadline(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/stall"] = stall(1000)
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout, match=r"sent nothing for 0.3 s") as caught:
        fetch(f"http://127.0.0.1:{server.port}/stall", wire, dns, read_timeout_s=0.3)
    assert time.monotonic() - t0 < 2
    assert caught.value.status_code == 504


def test_server_that_never_answers_trips_the_read_deadline(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/mute"] = mute()
    with pytest.raises(FetchTimeout, match="sent nothing"):
        fetch(f"http://127.0.0.1:{server.port}/mute", wire, dns, read_timeout_s=0.3)


def test_slow_drip_trips_the_total_deadline(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/drip"] = drip(1000, every_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout, match=r"took longer than 0.6 s"):
        fetch(
            f"http://127.0.0.1:{server.port}/drip",
            wire,
            dns,
            read_timeout_s=1.0,
            total_timeout_s=0.6,
        )
    assert 0.5 < time.monotonic() - t0 < 2.5


def test_total_deadline_covers_redirect_hops(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/r"] = redirect("/drip")
    server.routes["/drip"] = drip(1000, every_s=0.05)
    with pytest.raises(FetchTimeout, match="took longer than 0.4 s"):
        fetch(f"http://127.0.0.1:{server.port}/r", wire, dns, total_timeout_s=0.4)
    assert server.paths() == ["/r", "/drip"]


# ---------------------------------------------------------------------------------------------
# Sizes and lying servers


def test_declared_length_over_the_limit_is_refused_before_the_body(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    """The server declares too much and then sends nothing: refusing must not wait for it."""
    server.routes["/huge"] = stall(10**12)
    t0 = time.monotonic()
    with pytest.raises(MediaTooLarge, match="over the 64.0 MiB limit") as caught:
        fetch(
            f"http://127.0.0.1:{server.port}/huge",
            wire,
            dns,
            max_bytes=64 * 1024 * 1024,
            read_timeout_s=5.0,
        )
    assert time.monotonic() - t0 < 1.5
    assert caught.value.status_code == 413


def test_body_longer_than_declared_is_cut_at_the_declared_length(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/liar"] = declared(10, b"0123456789" + b"x" * 100_000)
    assert fetch(f"http://127.0.0.1:{server.port}/liar", wire, dns, max_bytes=1000) == b"0123456789"


def test_body_shorter_than_declared_fails(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/short"] = declared(1000, b"x" * 10)
    with pytest.raises(FetchFailed, match="malformed or incomplete response") as caught:
        fetch(f"http://127.0.0.1:{server.port}/short", wire, dns)
    assert caught.value.status_code == 502


def test_endless_chunked_body_is_stopped_while_streaming(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/endless"] = chunked(None)
    t0 = time.monotonic()
    with pytest.raises(MediaTooLarge, match="over the 1.0 MiB limit"):
        fetch(f"http://127.0.0.1:{server.port}/endless", wire, dns, max_bytes=1024 * 1024)
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize(("size", "fits"), [(256 * KiB, True), (256 * KiB + 1, False)])
def test_chunked_body_limit_is_exact(
    size: int, fits: bool, server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/chunked"] = chunked(size, chunk=10_000)
    url = f"http://127.0.0.1:{server.port}/chunked"
    if fits:
        assert fetch(url, wire, dns, max_bytes=256 * KiB) == b"v" * size
    else:
        with pytest.raises(MediaTooLarge):
            fetch(url, wire, dns, max_bytes=256 * KiB)


def test_declared_length_at_the_limit_is_fine(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    assert (
        fetch(f"http://127.0.0.1:{server.port}/video.mp4", wire, dns, max_bytes=len(VIDEO)) == VIDEO
    )
    with pytest.raises(MediaTooLarge, match=f"{len(VIDEO)} bytes, over the {len(VIDEO) - 1}"):
        fetch(f"http://127.0.0.1:{server.port}/video.mp4", wire, dns, max_bytes=len(VIDEO) - 1)


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (404, "Not Found"),
        (500, "Internal Server Error"),
        (403, "Forbidden"),
        (300, "Multiple Choices"),
    ],
)
def test_non_2xx_final_status_fails_with_the_status(
    code: int, phrase: str, server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/s"] = status(code)
    with pytest.raises(FetchFailed) as caught:
        fetch(f"http://127.0.0.1:{server.port}/s", wire, dns)
    assert caught.value.message == f"link failed: the server answered {code} {phrase}"
    assert caught.value.status_code == 502


def test_compressed_answer_is_refused(
    server: HostileServer, wire: LoopbackOnly, dns: FakeDNS
) -> None:
    server.routes["/gz"] = ok(b"\x1f\x8b" + b"\x00" * 18, **{"Content-Encoding": "gzip"})
    with pytest.raises(FetchFailed, match=r"encoded \(gzip\)"):
        fetch(f"http://127.0.0.1:{server.port}/gz", wire, dns)


def test_connection_refused_fails(wire: LoopbackOnly, dns: FakeDNS) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed, match=f"could not connect to 127.0.0.1:{port}"):
        fetch(f"http://127.0.0.1:{port}/video.mp4", wire, dns)


# ---------------------------------------------------------------------------------------------
# TLS: pinning keeps SNI and certificate checks on the link's host name


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=video.test",
            "-addext",
            "subjectAltName=DNS:video.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[HostileServer]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    srv_box: list[HostileServer] = []
    context.sni_callback = lambda sslobj, name, ctx: srv_box[0].sni.append(name)
    srv = HostileServer(tls=context)
    srv_box.append(srv)
    yield srv
    srv.close()


def _trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_https_to_a_pinned_name_uses_sni_and_checks_the_certificate(
    tls_server: HostileServer, certificate: tuple[Path, Path], wire: LoopbackOnly, dns: FakeDNS
) -> None:
    dns.answers["video.test"] = [["127.0.0.1"]]
    data = fetch(
        f"https://video.test:{tls_server.port}/video.mp4",
        wire,
        dns,
        tls_context=_trusting(certificate),
    )
    assert data == VIDEO
    assert tls_server.sni == ["video.test"]
    assert tls_server.requests[0].headers["host"] == f"video.test:{tls_server.port}"
    assert wire.connects == [("127.0.0.1", tls_server.port)]


@pytest.mark.parametrize("host", ["other.test", "127.0.0.1"])
def test_https_certificate_must_match_the_link_host_not_the_address(
    host: str,
    tls_server: HostileServer,
    certificate: tuple[Path, Path],
    wire: LoopbackOnly,
    dns: FakeDNS,
) -> None:
    dns.answers["other.test"] = [["127.0.0.1"]]
    with pytest.raises(FetchFailed, match="certificate verify failed"):
        fetch(
            f"https://{host}:{tls_server.port}/video.mp4",
            wire,
            dns,
            tls_context=_trusting(certificate),
        )
    assert tls_server.requests == []


# ---------------------------------------------------------------------------------------------
# Convenience function and settings


def test_fetch_bytes_uses_a_client_of_its_own(server: HostileServer) -> None:
    """The real socket layer and resolver; only loopback literals, so nothing can leave."""
    allowed = settings()
    assert asyncio.run(fetch_bytes(f"http://127.0.0.1:{server.port}/video.mp4", allowed)) == VIDEO
    with pytest.raises(FetchRefused, match="127.0.0.2 is a loopback"):
        asyncio.run(fetch_bytes(f"http://127.0.0.2:{server.port}/video.mp4", allowed))
    with pytest.raises(FetchRefused, match="loopback"):
        asyncio.run(fetch_bytes(f"http://0x7f000001:{server.port}/video.mp4", FetchSettings()))
    assert server.connections == ["127.0.0.1"]


def test_settings_from_service_settings() -> None:
    service = SimpleNamespace(
        fetch_allow="127.0.0.1, files.example.com",
        fetch_max_bytes=1000,
        fetch_connect_timeout_s=1.5,
        fetch_read_timeout_s=2.5,
        fetch_total_timeout_s=30.0,
        fetch_max_redirects=2,
    )
    got = fetch_settings_from(service)
    assert got.policy == AddressPolicy.from_allow_list(["127.0.0.1", "files.example.com"])
    assert (
        got.max_bytes,
        got.connect_timeout_s,
        got.read_timeout_s,
        got.total_timeout_s,
        got.max_redirects,
    ) == (1000, 1.5, 2.5, 30.0, 2)
    assert fetch_settings_from(SimpleNamespace()) == FetchSettings()
    assert FetchSettings().max_bytes == 200 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("fetch_allow", ["10.0.0.1/8"], "fetch_allow: bad allow-list entry '10.0.0.1/8'"),
        ("fetch_read_timeout_s", 0, "fetch_read_timeout_s must be > 0"),
        ("fetch_max_bytes", -1, "fetch_max_bytes must be > 0"),
        ("fetch_max_redirects", -1, "fetch_max_redirects must be >= 0"),
    ],
)
def test_bad_setting_names_itself(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        fetch_settings_from(SimpleNamespace(**{name: value}))
