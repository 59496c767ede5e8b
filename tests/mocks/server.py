"""Run the mock upstream in a background thread (for tests) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import create_app
from .common import SEND_TIMES, RecordedRequest, Recorder


class MockServer:
    """A running mock upstream. ``url`` is ``http://host:port`` (no trailing slash).

    ``recorder`` holds every request received; ``requests()``, ``last()`` and ``clear()`` are
    shortcuts to it. Use as a context manager or call ``stop()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.recorder = Recorder()
        self.app = create_app(self.recorder)
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"mock-upstream-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, family: str) -> str:
        """What an SDK of ``family`` takes as its base URL (OpenAI's ends with ``/v1``)."""
        return f"{self.url}/v1" if family in ("openai", "openai-responses") else self.url

    def start(self, timeout: float = 10.0) -> MockServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mock upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def requests(self, *, family: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        return self.recorder.all(family=family, path=path)

    def last(self, *, family: str | None = None, path: str | None = None) -> RecordedRequest:
        return self.recorder.last(family=family, path=path)

    def clear(self) -> None:
        self.recorder.clear()

    @staticmethod
    def sent_times(token: str) -> dict[int, float]:
        """``mock-paced``: when each text piece of the stream ``token`` was sent (time.time())."""
        return SEND_TIMES.of(token)

    def __enter__(self) -> MockServer:
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MockServer({self.url})"


def start_mock_server(port: int = 0, host: str = "127.0.0.1") -> MockServer:
    """Start the mock upstream (all families) in a background thread; returns once it listens.

    ``port=0`` picks a free port. ``with start_mock_server() as mock: ... mock.url ...``
    """
    return MockServer(host, port).start()


def serve_forever(host: str, port: int, log_level: str = "info", **uvicorn_kwargs: Any) -> None:
    uvicorn.run(create_app(), host=host, port=port, log_level=log_level, lifespan="off", **uvicorn_kwargs)
