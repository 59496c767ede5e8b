"""Pooled upstream HTTP clients: the direct one, plus one per distinct outbound proxy.

A client per proxy (not per request) keeps connection pooling and keep-alive through the proxy;
the number of distinct proxies is small (global, per provider, per connection) and bounded here
so that a misconfiguration cannot leak clients.

The direct client checks the address each connection goes to, after DNS (`CheckedNetworkBackend`,
like the aiohttp session's socket factory in upstream.py); through a proxy, the proxy decides
where to connect, and the URL's name check is all there is."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from omniroute import ssrf
from omniroute_executor.checked_connect import CoreErrors, connect_checked

log = logging.getLogger("omniroute.executor")
MAX_PROXIED_CLIENTS = 64
# What httpx can tunnel through (SOCKS needs `socksio`, the `httpx[socks]` extra). socks5h:
# the proxy resolves the name, for upstreams only the proxy's network can resolve.
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_LIMITS = httpx.Limits(max_connections=2000, max_keepalive_connections=500)


def new_client(timeout_s: float, proxy: str | None = None, *,
               allow_private: bool | None = None) -> httpx.AsyncClient:
    """A pooled client; without `proxy`, every connection it opens is SSRF-checked (and, as on
    the aiohttp path, proxy environment variables are not read)."""
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    if proxy:
        return httpx.AsyncClient(http2=True, proxy=proxy, limits=_LIMITS, timeout=timeout)
    allowed = ssrf.private_allowed() if allow_private is None else allow_private
    return httpx.AsyncClient(transport=checked_transport(allowed), timeout=timeout)


def checked_transport(allow_private: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(http2=True, limits=_LIMITS)
    # httpx takes no network backend; its pool is rebuilt with the same settings and ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry, http2=True,
        network_backend=CheckedNetworkBackend(allow_private))
    return transport


class RefusedConnection(httpcore.ConnectError):
    """A connection not made: its address is refused. httpcore drops exception causes, so the
    refusal rides along as `os_error`, where aiohttp keeps it too (upstream_errors reads it)."""

    def __init__(self, refused: ssrf.AddressRefused) -> None:
        super().__init__(str(refused))
        self.os_error = refused


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connections, with the SSRF check of the address each one goes to
    (checked_connect: resolved here, every address checked, the connection made to a checked
    address). A refused address fails the connection (RefusedConnection) before a byte is sent."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._connector = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        async def to(address: str) -> httpcore.AsyncNetworkStream:
            return await self._connector.connect_tcp(address, port, timeout, local_address, socket_options)
        return await connect_checked(host, port, timeout, allow_private=self._allow_private,
                                     connect=to, errors=_HTTPCORE_ERRORS)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not upstreams")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


_HTTPCORE_ERRORS = CoreErrors(connect_error=httpcore.ConnectError, connect_timeout=httpcore.ConnectTimeout,
                              refused=RefusedConnection)


class _RefusingTransport(httpx.AsyncBaseTransport):
    """Stands in for a client on an unusable proxy URL: every request fails as a proxy error,
    which the executor already answers as an upstream transport error (and the router falls
    back). Going direct instead would silently bypass a proxy the admin required."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError(self._reason, request=request)


def proxied_client(timeout_s: float, proxy_url: str) -> httpx.AsyncClient:
    scheme = proxy_url.split("://", 1)[0].lower() if "://" in proxy_url else ""
    try:
        if scheme not in PROXY_SCHEMES:
            raise ValueError(f"unsupported proxy scheme {scheme!r}")
        return new_client(timeout_s, proxy_url)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        # The URL itself is never logged: it may carry the proxy's password.
        log.error("an outbound proxy URL is unusable (%s); requests through it fail", exc)
        return httpx.AsyncClient(transport=_RefusingTransport(f"unusable proxy URL: {exc}"))


class HttpClients:
    def __init__(self, direct: httpx.AsyncClient, timeout_s: float) -> None:
        self.direct = direct
        self._timeout_s = timeout_s
        self._proxied: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    def get(self, proxy_url: str) -> httpx.AsyncClient:
        if not proxy_url:
            return self.direct
        client = self._proxied.get(proxy_url)
        if client is not None:
            self._proxied.move_to_end(proxy_url)
            return client
        client = self._proxied[proxy_url] = proxied_client(self._timeout_s, proxy_url)
        if len(self._proxied) > MAX_PROXIED_CLIENTS:
            _, oldest = self._proxied.popitem(last=False)
            # Closed later: requests in flight on it may still be reading.
            asyncio.get_running_loop().call_later(
                self._timeout_s, lambda: asyncio.ensure_future(oldest.aclose()))
        return client

    @property
    def proxied_count(self) -> int:
        return len(self._proxied)

    async def aclose(self) -> None:
        for client in (self.direct, *self._proxied.values()):
            await client.aclose()
