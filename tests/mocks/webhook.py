"""A webhook receiver for alert tests: records every POST and answers 500 to the first `fail_first`
of them (a receiver that is down for a while), 200 after.

    with start_webhook(fail_first=2) as hook:
        hook.url, hook.received (every POST, failed ones too), hook.delivered (the 200s)
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Delivery:
    headers: dict[str, str]
    raw_body: bytes
    status: int

    @property
    def body(self) -> Any:
        return json.loads(self.raw_body)


@dataclass
class Webhook:
    url: str
    fail_first: int
    received: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def delivered(self) -> list[Delivery]:
        with self.lock:
            return [item for item in self.received if item.status == 200]


@contextlib.contextmanager
def start_webhook(fail_first: int = 0) -> Iterator[Webhook]:
    hook = Webhook(url="", fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with hook.lock:
                status = 500 if len(hook.received) < hook.fail_first else 200
                hook.received.append(Delivery({k.lower(): v for k, v in self.headers.items()},
                                              raw, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
