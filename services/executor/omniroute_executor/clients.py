"""Pooled upstream HTTP clients: the direct one, plus one per distinct outbound proxy.

A client per proxy (not per request) keeps connection pooling and keep-alive through the proxy;
the number of distinct proxies is small (global, per provider, per connection) and bounded here
so that a misconfiguration cannot leak clients."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import httpx

log = logging.getLogger("omniroute.executor")
MAX_PROXIED_CLIENTS = 64
# What httpx can tunnel through (SOCKS needs `socksio`, the `httpx[socks]` extra). socks5h:
# the proxy resolves the name, for upstreams only the proxy's network can resolve.
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def new_client(timeout_s: float, proxy: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, proxy=proxy,
                             limits=httpx.Limits(max_connections=2000, max_keepalive_connections=500),
                             timeout=httpx.Timeout(timeout_s, connect=10.0))


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
