"""HTTP plumbing shared by the families: reading and recording a request, streaming frames."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .common import PACED_PIECE, SEND_TIMES, Recorder, Scenario, pick_scenario

ErrorFactory = Callable[..., Response]


class MockDrop(Exception):
    """Raised inside a response stream to cut the connection (the ``mock-drop`` scenario)."""


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, MockDrop):
                return False
            exc = exc.__cause__ or exc.__context__ or _first_of_group(exc)
        return True


def _first_of_group(exc: BaseException) -> BaseException | None:
    inner = getattr(exc, "exceptions", None)
    return inner[0] if inner else None


logging.getLogger("uvicorn.error").addFilter(_HideDrops())


@dataclass
class Incoming:
    """A request as a mock sees it: recorded, its JSON parsed."""

    request: Request
    body: Any
    raw: bytes

    @property
    def headers(self) -> Any:
        return self.request.headers

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    def scenario(self, model: str) -> Scenario:
        return pick_scenario(model, self.request.headers)


async def receive(request: Request, family: str) -> Incoming:
    """Read, record and parse the request (``body`` is None when it is not JSON)."""
    raw = await request.body()
    body: Any = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
    recorder: Recorder = request.app.state.recorder
    recorder.add(
        family=family,
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        raw_body=raw,
    )
    return Incoming(request, body, raw)


async def first_byte_delay(scenario: Scenario) -> None:
    if scenario.delay_ms > 0:
        await asyncio.sleep(scenario.delay_ms / 1000)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None, **kw: Any) -> Response:
    return Response(
        orjson.dumps(obj),
        status_code=status,
        headers=headers,
        media_type=kw.get("media_type", "application/json"),
    )


def stream_response(
    frames: Iterable[bytes | MockDrop],
    scenario: Scenario,
    *,
    media_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """Send every frame as its own write (one HTTP chunk), pausing ``chunk_delay_ms`` between them.

    ``mock-paced`` pauses only before a frame that carries the next text piece, and notes in
    ``SEND_TIMES`` when each piece is handed over. A :class:`MockDrop` item in ``frames`` cuts
    the connection there.
    """
    if scenario.name == "paced":
        return StreamingResponse(_paced(frames, scenario), media_type=media_type, headers=headers)

    async def body() -> AsyncIterator[bytes]:
        first = True
        for frame in frames:
            if isinstance(frame, MockDrop):
                raise frame
            if not first and scenario.chunk_delay_ms > 0:
                await asyncio.sleep(scenario.chunk_delay_ms / 1000)
            first = False
            yield frame

    return StreamingResponse(body(), media_type=media_type, headers=headers)


async def _paced(frames: Iterable[bytes | MockDrop], scenario: Scenario) -> AsyncIterator[bytes]:
    sent = -1  # the highest piece index handed over so far
    for frame in frames:
        if isinstance(frame, MockDrop):
            raise frame
        # Only the first frame that names a piece sends it (a closing event repeats the text).
        pieces = [(m.group(1).decode(), int(m.group(2))) for m in PACED_PIECE_BYTES.finditer(frame)]
        new = [(token, index) for token, index in pieces if index > sent]
        if new:
            if sent >= 0:
                await asyncio.sleep(scenario.chunk_delay_ms / 1000)
            for token, index in new:
                SEND_TIMES.note(token, index)
            sent = max(index for _, index in new)
        yield frame


PACED_PIECE_BYTES = re.compile(PACED_PIECE.pattern.encode())


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event: optional ``event:`` line, one ``data:`` line, blank line."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
