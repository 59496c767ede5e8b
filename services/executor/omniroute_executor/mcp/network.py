"""The MCP client's connections (httpx2 over httpcore2, what the `mcp` SDK uses), with the same
SSRF check of the address each one goes to as the provider clients (omniroute_executor.
checked_connect): an MCP server's URL is checked by name before the call, and the address its
name resolves to when the connection is made. Proxy environment variables are not read (as on
the provider clients): through a proxy, the proxy would decide where to connect."""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import httpcore2
import httpx2

from omniroute import ssrf
from omniroute_executor.checked_connect import CoreErrors, connect_checked

_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's defaults


def checked_transport(allow_private: bool) -> httpx2.AsyncHTTPTransport:
    transport = httpx2.AsyncHTTPTransport(limits=_LIMITS)
    # httpx2 takes no network backend; its pool is rebuilt with the same settings and ours.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(), max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
        network_backend=CheckedNetworkBackend(allow_private))
    return transport


class RefusedConnection(httpcore2.ConnectError):
    """A connection not made: its address is refused (kept as `os_error`, where
    checked_connect.refusal_behind finds it: httpcore2 drops exception causes)."""

    def __init__(self, refused: ssrf.AddressRefused) -> None:
        super().__init__(str(refused))
        self.os_error = refused


class CheckedNetworkBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's connections, each to an address that passed the SSRF check."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._connector = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
                          ) -> httpcore2.AsyncNetworkStream:
        async def to(address: str) -> httpcore2.AsyncNetworkStream:
            return await self._connector.connect_tcp(address, port, timeout, local_address, socket_options)
        return await connect_checked(host, port, timeout, allow_private=self._allow_private,
                                     connect=to, errors=_HTTPCORE2_ERRORS)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
                                  ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not MCP servers")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


_HTTPCORE2_ERRORS = CoreErrors(connect_error=httpcore2.ConnectError, connect_timeout=httpcore2.ConnectTimeout,
                               refused=RefusedConnection)
