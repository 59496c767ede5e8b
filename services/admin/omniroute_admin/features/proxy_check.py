"""`POST /api/settings/proxy/test`: can we open a tunnel to a target through this proxy?

Speaks just enough HTTP CONNECT and SOCKS5 (RFC 1928/1929) to prove the proxy accepts us and
reaches the target; no TLS and no request to the target itself.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import struct
import time
from typing import Any
from urllib.parse import unquote, urlsplit


class ProxyError(Exception):
    pass


async def check(proxy_url: str, target_host: str, target_port: int,
                timeout_s: float = 5.0) -> dict[str, Any]:
    parts = urlsplit(proxy_url)
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                if parts.scheme.startswith("socks5"):
                    await _socks5(reader, writer, parts.username, parts.password, target_host, target_port)
                else:
                    await _http_connect(reader, writer, parts.username, parts.password,
                                        target_host, target_port)
            finally:
                writer.close()
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {timeout_s:g} s"}
    except (OSError, ProxyError) as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


async def _http_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        user: str | None, password: str | None, host: str, port: int) -> None:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if user is not None:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = (await reader.readline()).decode("latin-1").strip()
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        raise ProxyError(f"not an HTTP proxy answer: {status_line[:80]!r}")
    if fields[1] != "200":
        raise ProxyError(f"the proxy answered {status_line[:120]}")


_SOCKS_REPLIES = {1: "general failure", 2: "not allowed by ruleset", 3: "network unreachable",
                  4: "host unreachable", 5: "connection refused", 6: "TTL expired",
                  7: "command not supported", 8: "address type not supported"}


async def _socks5(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  user: str | None, password: str | None, host: str, port: int) -> None:
    methods = b"\x00\x02" if user is not None else b"\x00"
    writer.write(b"\x05" + bytes([len(methods)]) + methods)
    await writer.drain()
    version, method = await reader.readexactly(2)
    if version != 5:
        raise ProxyError("not a SOCKS5 proxy")
    if method == 0x02:
        name, secret = unquote(user or "").encode(), unquote(password or "").encode()
        writer.write(b"\x01" + bytes([len(name)]) + name + bytes([len(secret)]) + secret)
        await writer.drain()
        _, status = await reader.readexactly(2)
        if status != 0:
            raise ProxyError("the SOCKS5 proxy refused the user name or password")
    elif method != 0x00:
        raise ProxyError("the SOCKS5 proxy accepts none of our authentication methods")
    try:
        address = ipaddress.ip_address(host)
        kind, packed = (1, address.packed) if address.version == 4 else (4, address.packed)
    except ValueError:
        kind, packed = 3, bytes([len(host.encode())]) + host.encode()
    writer.write(b"\x05\x01\x00" + bytes([kind]) + packed + struct.pack("!H", port))
    await writer.drain()
    _, reply, _, bound_kind = await reader.readexactly(4)
    if reply != 0:
        raise ProxyError(f"the SOCKS5 proxy could not connect: {_SOCKS_REPLIES.get(reply, reply)}")
    size = {1: 4, 4: 16}.get(bound_kind)
    if size is None:
        size = (await reader.readexactly(1))[0]
    await reader.readexactly(size + 2)
