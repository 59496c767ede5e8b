"""A tiny SOCKS5 proxy (RFC 1928 CONNECT, no-auth or RFC 1929 user/password) in a background
thread, for tests that must prove traffic really went through an outbound proxy: it counts the
tunnels it opened and records their targets and credentials."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
from types import TracebackType


class SocksProxy:
    def __init__(self, username: str = "", password: str = "") -> None:
        self._auth = (username.encode(), password.encode()) if username else None
        self.tunnels: list[tuple[str, int]] = []  # (host, port) per CONNECT, in order
        self.credentials: list[tuple[bytes, bytes]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),),
                                        name="socks-proxy", daemon=True)

    def url(self, scheme: str = "socks5") -> str:
        creds = f"{self._auth[0].decode()}:{self._auth[1].decode()}@" if self._auth else ""
        return f"{scheme}://{creds}127.0.0.1:{self.port}"

    def start(self) -> SocksProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SocksProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, sock=self._sock)
        self._ready.set()
        async with server:
            await self._stop.wait()
        # Open tunnels end with the proxy, not when the loop is already gone.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target = await self._handshake(reader, writer)
            if target is None:
                return
            up_reader, up_writer = await asyncio.open_connection(*target)
            self.tunnels.append(target)
            writer.write(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))  # succeeded
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                writer.close()

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> tuple[str, int] | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 2 if self._auth else 0
        if version != 5 or wanted not in methods:
            writer.write(b"\x05\xff")
            return None
        writer.write(bytes([5, wanted]))
        if self._auth:
            _, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            plen = (await reader.readexactly(1))[0]
            password = await reader.readexactly(plen)
            self.credentials.append((user, password))
            ok = (user, password) == self._auth
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return None
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:  # 3: a domain name, resolved here (socks5h semantics)
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:  # CONNECT only
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            return None
        return host, port


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()
