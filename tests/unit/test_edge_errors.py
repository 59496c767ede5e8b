"""What the edge answers when something inside the gateway fails: a bug is 500 internal_error in
the caller's format; an unreachable router is 503 (502 once the answer had started)."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from starlette.requests import Request

from omniroute.answers import internal_error
from omniroute_edge import errors
from omniroute_edge.answer import _error_frames
from omniroute_edge.client_formats import ANTHROPIC, GEMINI, OLLAMA, OPENAI_CHAT, OPENAI_RESPONSES, ClientFormat


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(("code", "details", "status", "error_code"), [
    # grpc.aio's report of a servicer that raised, and a servicer that said INTERNAL: bugs.
    (grpc.StatusCode.UNKNOWN, "Unexpected <class 'RuntimeError'>: injected", 500, "internal_error"),
    (grpc.StatusCode.INTERNAL, "internal_error", 500, "internal_error"),
    (grpc.StatusCode.UNIMPLEMENTED, "Method not found!", 500, "internal_error"),
    # The router is not there, or did not answer in time: retry later.
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", 503, "router_unavailable"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", 503, "router_unavailable"),
    (grpc.StatusCode.UNKNOWN, "Stream removed", 503, "router_unavailable"),
])
def test_router_failures_map_to_what_they_mean(code: grpc.StatusCode, details: str, status: int,
                                               error_code: str) -> None:
    error = errors.router_error(rpc_error(code, details))
    assert (error.status, error.code) == (status, error_code)
    response = errors.from_grpc(OPENAI_CHAT, rpc_error(code, details))
    assert response.status_code == status
    assert orjson.loads(bytes(response.body))["error"]["code"] == error_code


def test_a_router_lost_mid_stream_is_502_and_a_bug_mid_stream_is_still_500() -> None:
    lost = errors.router_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed"), mid_stream=True)
    assert (lost.status, lost.code) == (502, "router_unavailable")
    bug = errors.router_error(rpc_error(grpc.StatusCode.INTERNAL, "internal_error"), mid_stream=True)
    assert (bug.status, bug.code) == (500, "internal_error")


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": []})


#: path → (format, the error object as that format's clients read it)
INTERNAL_BODIES: dict[str, tuple[ClientFormat, Any]] = {
    "/v1/chat/completions": (OPENAI_CHAT, lambda b: (b["error"]["type"], b["error"]["code"])),
    "/v1/embeddings": (OPENAI_CHAT, lambda b: (b["error"]["type"], b["error"]["code"])),
    "/v1/responses": (OPENAI_RESPONSES, lambda b: (b["error"]["type"], b["error"]["code"])),
    "/v1/messages": (ANTHROPIC, lambda b: (b["type"], b["error"]["type"])),
    "/v1/messages/count_tokens": (ANTHROPIC, lambda b: (b["type"], b["error"]["type"])),
    "/v1beta/models/m:generateContent": (GEMINI, lambda b: (b["error"]["code"], b["error"]["status"])),
    "/api/chat": (OLLAMA, lambda b: type(b["error"])),
}
EXPECTED = {"/v1/chat/completions": ("internal_error", "internal_error"),
            "/v1/embeddings": ("internal_error", "internal_error"),
            "/v1/responses": ("internal_error", "internal_error"),
            "/v1/messages": ("error", "api_error"),            # Anthropic's name for a 500
            "/v1/messages/count_tokens": ("error", "api_error"),
            "/v1beta/models/m:generateContent": (500, "INTERNAL"),  # google.rpc status
            "/api/chat": str}                                   # Ollama: {"error": "<message>"}


@pytest.mark.parametrize("path", sorted(INTERNAL_BODIES))
async def test_a_route_that_raised_answers_500_in_the_callers_format(path: str) -> None:
    fmt, read = INTERNAL_BODIES[path]
    assert errors.format_for_path(path) is fmt
    response = await errors.internal_error_response(_request(path), RuntimeError("injected"))
    assert response.status_code == 500 and response.media_type == "application/json"
    body = orjson.loads(bytes(response.body))
    assert read(body) == EXPECTED[path], body
    assert b"injected" not in bytes(response.body)   # the exception's text stays in the log


@pytest.mark.parametrize(("fmt", "marker"), [
    (OPENAI_CHAT, b'"type":"internal_error"'), (OPENAI_RESPONSES, b'"code":"internal_error"'),
    (ANTHROPIC, b'"type":"api_error"'), (GEMINI, b'"status":"INTERNAL"'), (OLLAMA, b'"error":"The gateway'),
])
def test_an_internal_error_mid_stream_is_the_formats_own_error_event(fmt: ClientFormat, marker: bytes) -> None:
    frames = b"".join(_error_frames(fmt, None, internal_error(),
                                    {"model": "m", "request_id": "r", "include_usage": True}))
    assert marker in frames, frames
