"""Mock upstream MCP tool servers built with the official `mcp` SDK (MCPServer, formerly FastMCP).

HTTP (Streamable HTTP at ``/mcp``), run as its own process so that a test can kill it mid-call:

    with McpHttpMock(secret="s3cret") as mock:       # `python -m tests.mocks.mcp_tools --port N`
        mock.url                                     # http://127.0.0.1:N/mcp
        mock.kill()                                  # SIGKILL (a tool server dying)

Tools: ``echo(text)`` → text; ``sleep(seconds)`` → "slept"; ``fail(message)`` → an isError
result; ``headers()`` → the HTTP headers this call arrived with (a JSON object, names
lower-cased). Resource ``mock://notes/readme`` (text), template ``mock://notes/{name}``, prompt
``greet(name)``. With ``--bearer-file F`` every request must carry ``Authorization: Bearer <t>``
where t is the file's current content (else 401): a test rewrites the file to "expire" a token.
With ``--introspect-url U`` (the mock OAuth server's ``/_oauth/introspect``, tests/mocks/oauth.py)
only its live access tokens are accepted: an OAuth-protected tool server. The SDK's DNS
rebinding protection accepts only a local Host header; ``--allow-host NAME`` (repeatable) accepts
NAME too (a test's name that resolves to 127.0.0.1).

Stdio: ``python -m tests.mocks.mcp_tools --stdio`` — tools ``echo``, ``sleep``, ``env(name)`` (the value
of an environment variable), ``pid()`` and ``exit_now()`` (the process dies without answering).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

README_URI = "mock://notes/readme"
README_TEXT = "the mock tool server's readme"
ROOT = Path(__file__).resolve().parents[2]


def build_server(name: str = "mock-tools") -> MCPServer:
    server: MCPServer = MCPServer(name, log_level="WARNING")

    @server.tool(description="Answers with the text it was given.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Sleeps, then answers.")
    async def sleep(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    @server.tool(description="Always fails as a tool (an isError result).")
    def fail(message: str = "it failed") -> str:
        raise ToolError(message)

    @server.tool(description="The HTTP headers this call arrived with.")
    def headers(ctx: Context) -> str:
        received = ctx.headers or {}
        return json.dumps({key.lower(): value for key, value in received.items()})

    @server.resource(README_URI, name="readme", mime_type="text/plain")
    def readme() -> str:
        return README_TEXT

    @server.resource("mock://notes/{note}", name="note", mime_type="text/plain")
    def note(note: str) -> str:
        return f"note {note}"

    @server.prompt(description="A greeting prompt.")
    def greet(name: str) -> str:
        return f"Say hello to {name}."

    return server


def build_stdio_server() -> MCPServer:
    server: MCPServer = MCPServer("mock-stdio", log_level="WARNING")

    @server.tool(description="Answers with the text it was given.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Sleeps, then answers.")
    async def sleep(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    @server.tool(description="The value of one environment variable of this process.")
    def env(name: str) -> str:
        return os.environ.get(name, "")

    @server.tool(description="This process's id.")
    def pid() -> int:
        return os.getpid()

    @server.tool(description="The process dies without answering.")
    def exit_now() -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"

    return server


class _BearerGate:
    """ASGI wrapper: 401 unless `Authorization: Bearer <t>` with t the bearer file's current
    content, or (introspection) a token the mock OAuth server says is live."""

    def __init__(self, app: Any, *, bearer_file: str = "", introspect_url: str = "") -> None:
        self._app = app
        self._file = Path(bearer_file) if bearer_file else None
        self._introspect_url = introspect_url

    async def _accepts(self, authorization: str) -> bool:
        token = authorization.removeprefix("Bearer ")
        if self._file is not None:
            return authorization == f"Bearer {self._file.read_text().strip()}"
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(self._introspect_url, data={"token": token})
        return bool(answer.json().get("active"))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"").decode()
            if not await self._accepts(given):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer error=\"invalid_token\"")]})
                await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
                return
        await self._app(scope, receive, send)


def _serve_http(host: str, port: int, bearer_file: str, introspect_url: str,
                allowed_hosts: list[str] | None = None) -> None:
    import uvicorn

    security = None  # the SDK's own: for a local server, only local names
    if allowed_hosts:
        local = ["127.0.0.1", "localhost", "[::1]", *allowed_hosts]
        security = TransportSecuritySettings(allowed_hosts=[f"{name}:*" for name in local],
                                             allowed_origins=[f"http://{name}:*" for name in local])
    app: Any = build_server().streamable_http_app(host=host, transport_security=security)
    if bearer_file or introspect_url:
        app = _BearerGate(app, bearer_file=bearer_file, introspect_url=introspect_url)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class McpHttpMock:
    """The HTTP mock in a child process (killable like a real tool server)."""

    def __init__(self, *, bearer_file: Path | None = None, introspect_url: str = "", port: int = 0,
                 allowed_hosts: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.allowed_hosts = allowed_hosts
        self.bearer_file = bearer_file
        self.introspect_url = introspect_url
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout: float = 20.0) -> McpHttpMock:
        command = [sys.executable, "-m", "tests.mocks.mcp_tools", "--port", str(self.port)]
        if self.bearer_file is not None:
            command += ["--bearer-file", str(self.bearer_file)]
        if self.introspect_url:
            command += ["--introspect-url", self.introspect_url]
        for name in self.allowed_hosts:
            command += ["--allow-host", name]
        self._process = subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the MCP mock exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the MCP mock did not start listening")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> McpHttpMock:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stdio_command() -> list[str]:
    """argv of the stdio mock (what an McpServer's `command` holds in tests)."""
    return [sys.executable, "-m", "tests.mocks.mcp_tools", "--stdio"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="tests.mocks.mcp_tools")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bearer-file", default="")
    parser.add_argument("--introspect-url", default="")
    parser.add_argument("--allow-host", action="append", default=[])
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    if args.stdio:
        build_stdio_server().run("stdio")
    else:
        _serve_http(args.host, args.port, args.bearer_file, args.introspect_url, args.allow_host)


if __name__ == "__main__":
    main()
