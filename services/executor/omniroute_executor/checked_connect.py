"""The SSRF check at connect time, shared by the executor's network backends: httpcore's (the
provider clients, clients.py) and httpcore2's (the MCP client, mcp/network.py).

The name is resolved here, every address checked (omniroute.ssrf.connect_refusal) and the
connection made to a checked address, never by a second lookup: a DNS answer that changes in
between (rebinding) cannot slip past. A refused address fails the connection before a byte is
sent. The two httpcore flavours differ only in their exception classes (`CoreErrors`), so that
each pool and client sees failures of its own kind."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from omniroute import ssrf

Stream = TypeVar("Stream")


@dataclass(frozen=True, slots=True)
class CoreErrors:
    """One httpcore flavour's exceptions."""

    connect_error: type[Exception]     # a connection not made (the next address may answer)
    connect_timeout: type[Exception]   # resolving took too long
    refused: Callable[[ssrf.AddressRefused], Exception]  # every usable address was refused


async def connect_checked(host: str, port: int, timeout: float | None, *, allow_private: bool,
                          connect: Callable[[str], Awaitable[Stream]], errors: CoreErrors) -> Stream:
    """`connect(address)` to the first address of `host` that passes the check and answers.
    When none answered and one was refused, the refusal is the failure (not a later address's
    connection error): it says why the call cannot work."""
    refused: ssrf.AddressRefused | None = None
    failed: Exception | None = None
    for address in await addresses(host, port, timeout, errors):
        reason = ssrf.connect_refusal(address, allow_private=allow_private)
        if reason:
            refused = refused or ssrf.AddressRefused(reason)
            continue
        try:
            return await connect(address)
        except errors.connect_error as exc:  # the next address may answer
            failed = exc
    if refused is not None:
        raise errors.refused(refused)
    raise failed or errors.connect_error(f"{host} has no address")


async def addresses(host: str, port: int, timeout: float | None, errors: CoreErrors) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, each once."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise errors.connect_timeout(f"resolving {host} took too long") from exc
    except OSError as exc:
        raise errors.connect_error(str(exc)) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal_behind(exc: BaseException) -> ssrf.AddressRefused | None:
    """The SSRF refusal behind a connection error: httpcore drops exception causes, so the
    backends' refused-connection errors keep it as `os_error` (where aiohttp keeps it too); the
    clients above chain their own error to httpcore's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssrf.AddressRefused):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None
