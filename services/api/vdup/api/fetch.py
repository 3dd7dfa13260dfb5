"""Downloads a client's video link into memory, safely: the I/O half of the SSRF guard.

Why the check sits in the socket layer
--------------------------------------
Checking a link's host and then letting the HTTP client connect is not enough: the client resolves
the name again, and a hostile DNS server can answer with a public address the first time and with
169.254.169.254 the second (DNS rebinding). So the address is checked where the socket is opened,
and the socket is opened to the address that was checked:

- ``HttpFetcher`` gives its ``httpx.AsyncClient`` a transport whose httpcore connection pool uses
  ``GuardedBackend`` as its network backend (``httpcore.AsyncConnectionPool(network_backend=...)``,
  a public httpcore API). httpcore calls ``connect_tcp(host, port)`` for every new connection; the
  guarded backend resolves the name once (``loop.getaddrinfo`` in the loop's thread pool, within
  the connect timeout), checks every answer with ``AddressPolicy.check`` and connects to a checked
  IP itself. Nothing resolves the name again, so the address checked is the address contacted.
  IP literals in any spelling (``0x7f000001``, ``127.1``) are parsed by ``netguard`` without DNS.
- The URL is not rewritten: httpcore still sends ``Host: <name>`` and, for https, uses the name
  for SNI and verifies the certificate against it. A keep-alive connection belongs to one
  (scheme, name, port) origin and was checked when it was opened.
- Every connection passes through the backend, whatever asked for it (a redirect hop, a retry, a
  future ``follow_redirects=True``). That is why this was preferred over rewriting the URL to the
  IP with a ``Host`` header and the ``sni_hostname`` extension: that guards only requests built
  that way, and its pool would share a TLS connection verified for one name with another name
  that resolves to the same IP.
- ``trust_env=False``: with ``HTTP(S)_PROXY`` set, httpx would connect to the proxy and let it
  resolve the link's host, around the guard; ``.netrc`` credentials are not sent either. Cookies
  are never stored, since one client serves every caller's links.

Redirects are followed by hand (``follow_redirects=False``): each hop's URL goes through
``check_url`` (scheme, credentials, host) and its connection through the guarded backend; at most
``max_redirects`` hops.

Limits: ``connect_timeout_s`` covers resolution and TCP/TLS connect; ``read_timeout_s`` is the
longest wait for any single read; ``total_timeout_s`` bounds the whole download, redirects
included. ``max_bytes`` is enforced while streaming; a Content-Length above it is refused before
the body is read, and a body longer than its Content-Length is cut there by the HTTP parser. We ask
for ``Accept-Encoding: identity`` and refuse compressed answers, so the limit counts the bytes we
keep and a small gzip cannot expand past it.

Errors (``vdup.errors``; each message says why):
- ``FetchRefused`` (400): the link or one of its redirects breaks the URL or address policy;
- ``MediaTooLarge`` (413): declared or streamed size above ``max_bytes``;
- ``FetchFailed`` (502): unresolvable host, connection or TLS failure, a non-2xx final status,
  a malformed or cut response, too many redirects;
- ``FetchTimeout`` (504, a ``FetchFailed``): the connect, read or total deadline passed. A slow
  server is the remote's failure, not a bad request, and 504 lets a client retry later.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from importlib.metadata import version
from typing import Protocol

import httpcore
import httpx

from vdup.api.netguard import AddressPolicy, check_url, parse_ip_host
from vdup.errors import FetchFailed, FetchRefused, FetchTimeout, MediaTooLarge

MiB = 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> IP address strings``; raises OSError (``socket.gaierror``) when unknown."""


@dataclass(frozen=True)
class FetchSettings:
    """How links are downloaded. Field ``x`` is the service setting ``fetch_x``."""

    connect_timeout_s: float = 5.0  # DNS resolution + TCP (+ TLS) connect, per connection
    read_timeout_s: float = 10.0  # longest silence while waiting for any chunk
    total_timeout_s: float = 60.0  # whole download, all redirects included
    max_bytes: int = 200 * MiB  # body size limit, checked while streaming
    max_redirects: int = 5  # redirect hops followed; one more fails
    user_agent: str = f"vdup-fetch/{version('vdup')}"
    policy: AddressPolicy = field(default_factory=AddressPolicy)  # default: public addresses only
    tls_context: ssl.SSLContext | None = None  # None: certifi CAs (+ SSL_CERT_FILE/SSL_CERT_DIR)

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"fetch_{name} must be > 0 seconds, got {value!r}")
        if not self.max_bytes > 0:
            raise ValueError(f"fetch_max_bytes must be > 0, got {self.max_bytes!r}")
        if not self.max_redirects >= 0:
            raise ValueError(f"fetch_max_redirects must be >= 0, got {self.max_redirects!r}")


def fetch_settings_from(settings: object) -> FetchSettings:
    """``FetchSettings`` from the service settings' ``fetch_*`` attributes; absent ones keep the
    defaults. ``fetch_allow`` is a list of allow-list entries or a comma-separated string. Raises
    ValueError naming the bad setting."""
    defaults = FetchSettings()
    try:
        policy = AddressPolicy.from_allow_list(getattr(settings, "fetch_allow", None) or ())
    except ValueError as exc:
        raise ValueError(f"fetch_allow: {exc}") from None
    return FetchSettings(
        connect_timeout_s=getattr(settings, "fetch_connect_timeout_s", defaults.connect_timeout_s),
        read_timeout_s=getattr(settings, "fetch_read_timeout_s", defaults.read_timeout_s),
        total_timeout_s=getattr(settings, "fetch_total_timeout_s", defaults.total_timeout_s),
        max_bytes=getattr(settings, "fetch_max_bytes", defaults.max_bytes),
        max_redirects=getattr(settings, "fetch_max_redirects", defaults.max_redirects),
        user_agent=getattr(settings, "fetch_user_agent", None) or defaults.user_agent,
        policy=policy,
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (``getaddrinfo`` in a worker thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the policy allows (see module
    docstring): resolve once, check every answer, connect to a checked address."""

    def __init__(
        self, policy: AddressPolicy, resolver: Resolver, inner: httpcore.AsyncNetworkBackend
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = inner

    async def checked_addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The addresses of ``host`` if all of them pass the policy; raises FetchRefused if not,
        FetchFailed if the name does not resolve, httpcore.ConnectTimeout if DNS is too slow."""
        literal = parse_ip_host(host)
        if literal is not None:
            answers: Sequence[str] = [str(literal)]
        else:
            try:
                async with asyncio.timeout(timeout):
                    answers = await self._resolve(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout} s") from None
            except OSError:
                raise FetchFailed(f"link failed: cannot resolve host {host}") from None
            if not answers:
                raise FetchFailed(f"link failed: host {host} has no address")
        return [str(address) for address in self._policy.check(host, answers)]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.checked_addresses(host, port, timeout):
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("link refused: unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response mapping, exception mapping) over a connection pool
    whose every connection goes through ``GuardedBackend``. httpx has no public argument for the
    network backend, so the pool it builds is replaced; the check below fails start-up loudly if
    a future httpx moves it."""

    def __init__(self, backend: GuardedBackend, tls: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=tls, trust_env=False, limits=limits, retries=0)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("this httpx version does not keep its httpcore pool in _pool")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            network_backend=backend,
        )


class Fetcher(Protocol):
    """Gets the bytes behind a client's link."""

    async def fetch(self, url: str) -> bytes:
        """The body of ``url`` (at most the configured size); raises a ``vdup.errors`` error."""
        ...


class HttpFetcher:
    """The real ``Fetcher``: one ``httpx.AsyncClient`` for the process, closed by ``aclose``.

    ``resolver`` and ``network_backend`` (the socket layer under the guard, default
    ``httpcore.AnyIOBackend``) are replaceable for tests; the policy check sits between them.
    Needs an asyncio event loop.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.settings = settings
        self.backend = GuardedBackend(
            settings.policy, resolver, network_backend or httpcore.AnyIOBackend()
        )
        tls = settings.tls_context or httpx.create_ssl_context()
        limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(self.backend, tls, limits),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.read_timeout_s,
                pool=settings.connect_timeout_s,
            ),
            follow_redirects=False,
            trust_env=False,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={
                "User-Agent": settings.user_agent,
                "Accept": "*/*",
                "Accept-Encoding": "identity",
            },
        )

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The body of ``url``, following at most ``max_redirects`` redirects, each checked.

        Returns at most ``max_bytes`` bytes. Raises FetchRefused, MediaTooLarge, FetchFailed or
        FetchTimeout (see the module docstring) with a message for the client.
        """
        deadline = asyncio.timeout(self.settings.total_timeout_s)
        try:
            async with deadline:
                return await self._follow(url)
        except TimeoutError:
            if not deadline.expired():
                raise FetchTimeout("link timed out") from None
            raise FetchTimeout(
                f"link timed out: the download took longer than {self.settings.total_timeout_s:g} s"
            ) from None

    async def _follow(self, url: str) -> bytes:
        for _hop in range(self.settings.max_redirects + 1):
            request = self._request(url)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._domain_error(exc, request.url) from exc
            try:
                if response.status_code not in REDIRECT_STATUSES:
                    return await self._body(response)
                url = _redirect_target(response)
            finally:
                await response.aclose()
        raise FetchFailed(f"link failed: more than {self.settings.max_redirects} redirects")

    def _request(self, url: str) -> httpx.Request:
        link = check_url(url)
        try:
            parsed = httpx.URL(link.url)
        except httpx.InvalidURL as exc:
            raise FetchRefused(f"link refused: not a valid URL ({exc})") from None
        if parsed.scheme not in ("http", "https") or parsed.userinfo:
            raise FetchRefused("link refused: only plain http(s) links without credentials")
        return self._client.build_request("GET", parsed)

    async def _body(self, response: httpx.Response) -> bytes:
        status = response.status_code
        if not 200 <= status < 300:
            answered = f"{status} {_phrase(status)}".rstrip()
            raise FetchFailed(f"link failed: the server answered {answered}")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise FetchFailed(
                f"link failed: the server sent the body encoded ({encoding[:40]}) although we "
                "asked for identity"
            )
        limit = self.settings.max_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise MediaTooLarge(
                f"link refused: the video is {_size(int(declared))}, over the {_size(limit)} limit"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > limit:
                    raise MediaTooLarge(f"link refused: the video is over the {_size(limit)} limit")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise self._domain_error(exc, response.url) from exc
        return b"".join(chunks)

    def _domain_error(self, exc: httpx.HTTPError, url: httpx.URL) -> Exception:
        s = self.settings
        where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        if isinstance(exc, httpx.ConnectTimeout):
            return FetchTimeout(
                f"link timed out: could not connect to {where} within {s.connect_timeout_s:g} s"
            )
        if isinstance(exc, httpx.ReadTimeout):
            return FetchTimeout(f"link timed out: {where} sent nothing for {s.read_timeout_s:g} s")
        if isinstance(exc, httpx.TimeoutException):
            return FetchTimeout(f"link timed out: {where} was too slow")
        if isinstance(exc, httpx.ConnectError):
            tls = _tls_error(exc)
            if tls is not None:
                return FetchFailed(f"link failed: TLS with {where} failed ({tls})")
            return FetchFailed(f"link failed: could not connect to {where}")
        if isinstance(exc, httpx.RemoteProtocolError):
            return FetchFailed(f"link failed: {where} sent a malformed or incomplete response")
        if isinstance(exc, httpx.NetworkError):
            return FetchFailed(f"link failed: the connection to {where} broke")
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            return FetchRefused("link refused: not a valid http(s) URL")
        return FetchFailed(f"link failed: {type(exc).__name__} from {where}")


async def fetch_bytes(url: str, settings: FetchSettings) -> bytes:
    """One download with a client of its own (scripts, one-off jobs); the API keeps one
    ``HttpFetcher`` for its lifetime instead."""
    async with HttpFetcher(settings) as fetcher:
        return await fetcher.fetch(url)


def _redirect_target(response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(
            f"link failed: the server answered {response.status_code} without a Location"
        )
    try:
        return str(response.url.join(location))
    except httpx.InvalidURL:
        raise FetchFailed("link failed: the server redirected to an invalid URL") from None


def _tls_error(exc: BaseException) -> str | None:
    """The TLS reason behind a connect error (e.g. a certificate that does not match), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return seen.reason or "handshake failed"
        seen = seen.__cause__ or seen.__context__
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"
