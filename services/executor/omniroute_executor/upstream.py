"""The chat call's upstream HTTP exchange, on one of two pooled clients.

Direct calls (no outbound proxy) use aiohttp: its C HTTP parser costs a fraction of httpx's
pure-Python one per request and per streamed chunk (bench/README.md: 2.4× less CPU for a whole
answer, 3.7× for a 100-chunk stream). Calls through a proxy keep httpx, which tunnels HTTP and
SOCKS5 proxies (clients.HttpClients). Either way the servicer sees one `UpstreamAnswer`, and a
transport failure is one `Unreachable` carrying the error for the router."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi
import httpx

from omniroute import ssrf
from omniroute.v1 import common_pb2
from omniroute_executor import upstream_errors
from omniroute_executor.clients import HttpClients

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]  # (family, type, proto, canonname, sockaddr)


class Unreachable(Exception):
    """The upstream could not be reached, or the connection failed mid-answer."""

    def __init__(self, error: common_pb2.Error) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class UpstreamAnswer:
    status: int
    headers: list[tuple[str, str]]  # every response header, in order (repeated ones too)
    _pieces: Callable[[], AsyncIterator[bytes]]
    _read: Callable[[], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]

    def header_map(self) -> httpx.Headers:
        """Case-insensitive view, for the (rare) error path."""
        return httpx.Headers(self.headers)

    async def read(self) -> bytes:
        try:
            return await self._read()
        except (aiohttp.ClientError, httpx.HTTPError) as exc:
            raise Unreachable(upstream_errors.transport_error(exc)) from exc

    async def pieces(self) -> AsyncIterator[bytes]:
        """The (decoded) body as it arrives."""
        try:
            async for piece in self._pieces():
                yield piece
        except (aiohttp.ClientError, httpx.HTTPError) as exc:
            raise Unreachable(upstream_errors.transport_error(exc)) from exc


def checked_socket(allow_private: bool) -> Callable[[AddrInfo], socket.socket]:
    """aiohttp's socket factory: it gets the address the connection is about to go to (after
    DNS, a literal address too) and refuses one that omniroute.ssrf refuses."""
    def create(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, peer = addr_info
        reason = ssrf.connect_refusal(str(peer[0]), allow_private=allow_private)
        if reason:
            raise ssrf.AddressRefused(reason)
        return socket.socket(family=family, type=type_, proto=proto)
    return create


class DirectClient:
    """One aiohttp session per process (keep-alive pool), created on first use inside the loop.
    Every connection it opens goes through the SSRF check of its peer address."""

    def __init__(self, limit: int = 2000, allow_private: bool | None = None) -> None:
        self._limit = limit
        self._allow_private = ssrf.private_allowed() if allow_private is None else allow_private
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=certifi.where())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=context, keepalive_timeout=60,
                                               socket_factory=checked_socket(self._allow_private)),
                # Whole-call limits are the servicer's (asyncio.timeout); this bounds each read.
                timeout=aiohttp.ClientTimeout(total=None, connect=10.0), auto_decompress=True)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def post(direct: DirectClient, proxied: HttpClients, proxy_url: str, url: str, body: bytes,
               headers: dict[str, str], read_timeout_s: float) -> UpstreamAnswer:
    """Send the request and return once the response headers are in."""
    if proxy_url:
        return await _post_httpx(proxied.get(proxy_url), url, body, headers, read_timeout_s)
    try:
        response = await direct.session().post(
            url, data=body, headers=headers, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=read_timeout_s))
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise Unreachable(upstream_errors.transport_error(exc)) from exc

    async def close() -> None:
        response.release()

    return UpstreamAnswer(response.status, [(k, v) for k, v in response.headers.items()],
                          lambda: _aiohttp_pieces(response), response.read, close)


async def _aiohttp_pieces(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    content = response.content
    try:
        async for piece in content.iter_any():
            yield piece
    except aiohttp.ClientPayloadError:
        # aiohttp raises a connection's failure before handing out what had arrived ahead of
        # it; those last events are the caller's (the stream then ends with an error event).
        buffered = getattr(content, "_buffer", None)  # private, pinned aiohttp: see the e2e test
        if buffered:
            rest = b"".join(buffered)
            buffered.clear()
            yield rest
        raise


async def _post_httpx(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                      read_timeout_s: float) -> UpstreamAnswer:
    try:
        response = await client.send(
            client.build_request("POST", url, content=body, headers=headers,
                                 timeout=httpx.Timeout(read_timeout_s, connect=10.0)),
            stream=True)
    except httpx.HTTPError as exc:
        raise Unreachable(upstream_errors.transport_error(exc)) from exc
    return UpstreamAnswer(response.status_code, response.headers.multi_items(), response.aiter_bytes,
                          response.aread, response.aclose)
