"""The executor's direct httpx client (operations: embeddings, images, audio, model lists) checks
the address each connection goes to, after DNS, like the aiohttp path does for chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from omniroute_executor.clients import new_client
from omniroute_executor.upstream_errors import transport_error


class CountingServer:
    """A local HTTP server that counts the TCP connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    counting = CountingServer()
    listener = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    counting.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield counting


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_a_refused_address_is_not_connected_to(server: CountingServer, host: str) -> None:
    async with new_client(5, allow_private=False) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://{host}:{server.port}/v1/models")
    error = transport_error(caught.value)
    assert (error.status, error.code, error.retryable) == (502, "upstream_address_refused", True)
    assert "127.0.0.1 is a loopback address" in error.message
    assert server.connections == 0


async def test_an_allowed_address_is_connected_to_by_name(server: CountingServer) -> None:
    async with new_client(5, allow_private=True) as client:
        response = await client.get(f"http://localhost:{server.port}/")
    assert (response.status_code, response.text, server.connections) == (200, "ok", 1)


async def test_link_local_is_refused_even_when_private_is_allowed() -> None:
    async with new_client(5, allow_private=True) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://169.254.169.254/latest/meta-data/")
    assert transport_error(caught.value).code == "upstream_address_refused"


async def test_a_name_that_does_not_resolve_is_unreachable() -> None:
    async with new_client(5, allow_private=False) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://no-such-host.invalid/")
    assert transport_error(caught.value).code == "upstream_unreachable"
