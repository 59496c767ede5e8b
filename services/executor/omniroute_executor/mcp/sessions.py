"""MCP client sessions to upstream servers (official `mcp` SDK).

Streamable HTTP: one short session per operation (initialize, the call, terminate), the
router's injected headers on every request. The headers can change between calls (an OAuth
token refreshed), an idle session cannot go stale, and a server that restarted needs nothing
from us; the cost is the initialize round trip.

stdio: the server process is started on first use and kept (one process and one session per
server, shared by concurrent calls: JSON-RPC multiplexes them); a process that died is started
again on the next call, and one whose command or environment changed is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from omniroute.v1 import mcp_pb2
from omniroute_executor.mcp.network import checked_transport

log = logging.getLogger("omniroute.executor.mcp")
# The SDK's HTTP client logs every request (and the SDK each session's steps) at INFO: a few
# lines per tool call. Our own line says what failed; theirs are kept for warnings and worse.
for _chatty in ("httpx2", "mcp"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)


@dataclass(slots=True)
class HttpStatus:
    """The last HTTP status the server answered (the SDK reports a 401 as a generic error)."""

    last: int | None = None

    async def note(self, response: httpx2.Response) -> None:
        self.last = response.status_code


@contextlib.asynccontextmanager
async def http_session(target: mcp_pb2.McpServerTarget, status: HttpStatus, *,
                       allow_private: bool) -> AsyncIterator[ClientSession]:
    """Every connection of the session goes to an address that passed the SSRF check (network)."""
    headers = dict(target.headers)
    async with (httpx2.AsyncClient(headers=headers, event_hooks={"response": [status.note]},
                                   transport=checked_transport(allow_private),
                                   timeout=httpx2.Timeout(max(target.timeout_s, 1.0))) as http,
                streamable_http_client(target.url, http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def fingerprint(target: mcp_pb2.McpServerTarget) -> str:
    material = "\0".join([*target.command, "\0env", *sorted(f"{k}={v}" for k, v in target.env.items())])
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass
class StdioProcess:
    """One kept stdio server: a task holds the SDK's contexts open (they must be entered and
    left by the same task) until `stop` is set or the process ends."""

    server_id: str
    fingerprint: str
    ready: asyncio.Future[ClientSession] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def alive(self) -> bool:
        if self.task is None or self.task.done() or self.stop.is_set():
            return False
        if not self.ready.done():
            return True  # still starting
        if self.ready.exception() is not None:
            return False
        # The SDK's dispatcher marks itself closed when the server's stdout ends (it died).
        dispatcher = getattr(self.ready.result(), "_dispatcher", None)
        return not bool(getattr(dispatcher, "_closed", False))

    async def run(self, target: mcp_pb2.McpServerTarget) -> None:
        argv = list(target.command)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(target.env) or None)
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                self.ready.set_result(session)
                await self.stop.wait()
        except BaseException as exc:  # the SDK wraps failures in exception groups
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("stdio MCP server %s ended: %s", self.server_id, type(exc).__name__)


class StdioServers:
    def __init__(self) -> None:
        self._processes: dict[str, StdioProcess] = {}
        self._lock = asyncio.Lock()

    async def session(self, target: mcp_pb2.McpServerTarget) -> tuple[StdioProcess, ClientSession]:
        if not target.command:
            raise ValueError(f"MCP server {target.server_id} (stdio) has no command")
        process = await self._current(target)
        try:
            return process, await asyncio.shield(process.ready)
        except Exception:
            # Starting failed: once more. A child can die before its exec for reasons of ours
            # (the event loop forks a process that runs gRPC); a command that cannot work fails
            # twice, quickly.
            await self.forget(process)
            process = await self._current(target)
            return process, await asyncio.shield(process.ready)

    async def _current(self, target: mcp_pb2.McpServerTarget) -> StdioProcess:
        """The kept process, started (again) when there is none, it died or its command or
        environment changed."""
        wanted = fingerprint(target)
        async with self._lock:
            current = self._processes.get(target.server_id)
            if current is None or current.fingerprint != wanted or not current.alive():
                if current is not None:
                    await self._end(current)
                    log.info("restarting stdio MCP server %s", target.server_id)
                current = StdioProcess(target.server_id, wanted)
                current.task = asyncio.create_task(current.run(target), name=f"mcp-stdio-{target.server_id}")
                self._processes[target.server_id] = current
        return current

    async def forget(self, process: StdioProcess) -> None:
        """A call found `process` dead: the next call starts a new one. (Only that process: a
        concurrent call that failed on it too must not end the one started since.)"""
        async with self._lock:
            if self._processes.get(process.server_id) is process:
                del self._processes[process.server_id]
        await self._end(process)

    @staticmethod
    async def _end(process: StdioProcess) -> None:
        process.stop.set()
        if process.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(process.task), 10.0)

    async def aclose(self) -> None:
        async with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
        for process in processes:
            await self._end(process)
