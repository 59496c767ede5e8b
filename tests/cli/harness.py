"""The coding CLIs (Claude Code, Codex, Gemini CLI) for tests/e2e/test_cli_tools.py: installed from
the pinned tests/cli/package-lock.json, run headless with a bounded time, and a recording proxy
that keeps every request a CLI sends (the fixtures under tests/fixtures/cli/ come from it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

CLI_DIR = Path(__file__).resolve().parent
BIN = CLI_DIR / "node_modules" / ".bin"
COMMANDS = ("claude", "codex", "gemini")
INSTALL_COMMAND = "npm ci --prefix tests/cli --no-audit --no-fund"
NODE_HINT = ("Node.js >= 20 and npm are needed to run the coding CLIs: install them (Debian/Ubuntu: "
             "`apt-get install -y nodejs npm`), then run `" + INSTALL_COMMAND + "` from the repository root")
MIN_NODE_MAJOR = 20
INSTALL_TIMEOUT_S = 900
#: Settings the test hands the Gemini CLI beside the user's (telemetry, usage statistics and update
#: checks off); the CLI ignores a system settings file under a world-writable directory such as
#: /tmp, so it lives here.
GEMINI_SYSTEM_SETTINGS = CLI_DIR / "gemini-system-settings.json"


def _stamp() -> str:
    return hashlib.sha256((CLI_DIR / "package-lock.json").read_bytes()).hexdigest()


def ensure_installed() -> Path:
    """Install the pinned CLIs once (xdist workers wait on a file lock); returns node_modules/.bin.
    Fails (never skips) when node or npm is missing, with the command that installs them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(NODE_HINT, pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        pytest.fail(f"node {version.stdout.strip()} is too old. {NODE_HINT}", pytrace=False)
    stamp_path = CLI_DIR / "node_modules" / ".omniroute-installed"
    with open(CLI_DIR / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = stamp_path.exists() and stamp_path.read_text() == _stamp()
        if not (installed and all((BIN / name).exists() for name in COMMANDS)):
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLI_DIR, capture_output=True,
                                  text=True, timeout=INSTALL_TIMEOUT_S, check=False)
            if done.returncode != 0:
                pytest.fail(f"`{INSTALL_COMMAND}` failed ({done.returncode}):\n{done.stderr[-3000:]}",
                            pytrace=False)
            stamp_path.write_text(_stamp())
    return BIN


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (f"{' '.join(self.argv[:3])} … exited {self.returncode}\n--- stdout\n{self.stdout[-4000:]}"
                f"\n--- stderr\n{self.stderr[-4000:]}")


def run_cli(argv: list[str], *, env: Mapping[str, str], cwd: Path, timeout: float) -> Run:
    """Run a CLI headless (no stdin) in its own process group, killed whole after `timeout`."""
    with subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            return Run(argv, -1, stdout, f"{stderr}\n(killed after {timeout:g} s)")
    return Run(argv, process.returncode, stdout, stderr)


def base_env(home: Path) -> dict[str, str]:
    """What every CLI run gets: a temporary HOME and nothing from the test process's own env (no
    real provider key can leak in), the usual PATH, no colour."""
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "TERM": "dumb", "NO_COLOR": "1", "CI": "1"}


# --------------------------------------------------------------------------- the recording proxy


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                         "upgrade", "te", "trailer", "proxy-connection"})


class RecordingProxy:
    """Forwards every request to `target` unchanged, streaming the answer back as it comes, and keeps
    each request (method, path, headers, parsed JSON body) in `recorded`."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.recorded: list[Recorded] = []
        self._lock = threading.Lock()
        self._client = httpx.AsyncClient(base_url=self.target, timeout=httpx.Timeout(120, connect=10))
        app = Starlette(routes=[Route("/{path:path}", self._forward,
                                      methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                     lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"cli-recording-proxy-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self.recorded)

    def clear(self) -> None:
        with self._lock:
            self.recorded.clear()

    async def _forward(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.recorded.append(Recorded(request.method, request.url.path, request.url.query, headers, body))
        upstream = self._client.build_request(
            request.method, request.url.path, params=request.url.query, content=raw,
            headers={k: v for k, v in headers.items() if k not in _HOP_BY_HOP})
        answer = await self._client.send(upstream, stream=True)
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP},
                                 background=BackgroundTask(answer.aclose))

    def start(self, timeout: float = 10.0) -> RecordingProxy:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the recording proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()


@contextlib.contextmanager
def recording_proxy(target: str) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(target).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --------------------------------------------------------------------------- fixtures on disk

#: Headers that carry a credential: kept in a fixture as "<redacted>".
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"})
#: Longer strings (the CLIs' system prompts, tool descriptions, the environment they describe) are
#: replaced by their length: the fixtures keep each request's shape, not another product's prose.
MAX_KEPT_STRING = 160
#: Headers that differ on every run or machine (ids, lengths, the host's port).
_VOLATILE_HEADERS = frozenset({"content-length", "host", "x-client-request-id", "session-id", "thread-id",
                               "x-codex-window-id", "x-codex-turn-metadata", "x-claude-code-session-id"})


def _shape(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_KEPT_STRING else f"<{len(value)} characters>"
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return value


def fixture_document(cli: str, version: str, family: str, model: str, requests: list[Recorded]) -> dict[str, Any]:
    return {"cli": cli, "version": version, "upstream_family": family, "model": model,
            "requests": [{"method": r.method, "path": r.path, "query": r.query,
                          "headers": {k: ("<redacted>" if k in _SECRET_HEADERS else v)
                                      for k, v in sorted(r.headers.items()) if k not in _VOLATILE_HEADERS},
                          "body": _shape(r.body)} for r in requests]}


def write_fixture(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
