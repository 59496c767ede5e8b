"""Family ``anthropic``: Messages (JSON and SSE) and token counting.

Wire format as api.anthropic.com sends it: every SSE frame is ``event: <type>\\ndata: {...}\\n\\n``
in the order ``message_start``, then per block ``content_block_start`` / ``content_block_delta``
(``text_delta``, ``input_json_delta``, ``thinking_delta``, ``signature_delta``) /
``content_block_stop`` (a ``ping`` after the first block starts), ``message_delta`` (stop reason,
cumulative usage), ``message_stop``. A mid-stream failure is ``event: error``. Errors are
``{"type":"error","error":{"type","message"},"request_id"}``. Requires ``x-api-key`` (or a bearer
token; 401 ``authentication_error`` otherwise) and ``anthropic-version`` (400 otherwise, as the
real API does); ``max_tokens`` is required. Headers: ``request-id``, ``anthropic-ratelimit-*``;
``retry-after`` on 429 and 529.

Thinking blocks are sent only when the request enables thinking (``thinking.type`` ``enabled`` or
``adaptive``), as the real API does. ``mock-json`` with a forced tool (``tool_choice`` ``{"type":
"tool"}``) answers with that tool's ``tool_use`` block (the tool-forced JSON pattern).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .common import MODEL_NAMES, Script, ToolCall, build_script, new_id, prompt_words
from .serving import MockDrop, first_byte_delay, json_response, receive, sse, stream_response

FAMILY = "anthropic"

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (mock-400)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (mock-429)."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _reset() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))


def headers() -> dict[str, str]:
    reset = _reset()
    h = {"request-id": new_id("req_011", 24)}
    for kind, limit in (("requests", 4000), ("tokens", 2_000_000), ("input-tokens", 1_600_000)):
        h[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        h[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - 1)
        h[f"anthropic-ratelimit-{kind}-reset"] = reset
    h["anthropic-ratelimit-output-tokens-limit"] = "400000"
    h["anthropic-ratelimit-output-tokens-remaining"] = "400000"
    h["anthropic-ratelimit-output-tokens-reset"] = reset
    return h


def error_body(status: int, message: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    etype, default = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", ""))
    body: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": message or default}}
    body["request_id"] = request_id or new_id("req_011", 24)
    return body


def error_response(status: int, message: str | None = None) -> Response:
    h = headers()
    if status in (429, 529):
        h["retry-after"] = "1"
    if status == 429:
        h["anthropic-ratelimit-requests-remaining"] = "0"
    return json_response(error_body(status, message, h["request-id"]), status, h)


def check_auth(request: Request) -> Response | None:
    key = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    if not key:
        return error_response(401, "x-api-key header is required")
    if key.startswith(("bad", "invalid")):
        return error_response(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    return None


def _usage(s: Script, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": s.input_tokens - s.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": s.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _tool_id(t: ToolCall) -> str:
    return f"toolu_mock{t.index:02d}"


def message(s: Script, mid: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if s.reasoning:
        content.append({"type": "thinking", "thinking": s.full_reasoning, "signature": s.signature})
    if s.text:
        content.append({"type": "text", "text": s.full_text})
    content += [
        {"type": "tool_use", "id": _tool_id(t), "name": t.name, "input": t.arguments} for t in s.tools
    ]
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": s.model,
        "content": content,
        "stop_reason": STOP_REASONS[s.finish],
        "stop_sequence": None,
        "usage": _usage(s, s.output_tokens),
    }


def events(s: Script, mid: str) -> list[bytes | MockDrop]:
    start = message(s, mid)
    start.update(content=[], stop_reason=None, usage=_usage(s, 1))
    out: list[bytes | MockDrop] = [sse({"type": "message_start", "message": start}, "message_start")]
    index = 0

    def block(
        first: dict[str, Any], deltas: list[dict[str, Any]], cut: bytes | MockDrop | None = None
    ) -> bool:
        """Append one content block; with ``cut``, stop after two deltas and append it instead."""
        nonlocal index
        out.append(
            sse(
                {"type": "content_block_start", "index": index, "content_block": first}, "content_block_start"
            )
        )
        if index == 0:
            out.append(sse({"type": "ping"}, "ping"))
        for n, d in enumerate(deltas):
            if cut is not None and n == 2:
                out.append(cut)
                return False
            out.append(
                sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
            )
        out.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        index += 1
        return True

    if s.reasoning:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in s.reasoning]
        deltas.append({"type": "signature_delta", "signature": s.signature})
        block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
    if s.text:
        cut: bytes | MockDrop | None = None
        if s.drop:
            cut = MockDrop()
        elif s.error_mid:
            cut = sse(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"
            )
        if not block({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in s.text], cut):
            return out
    for t in s.tools:
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in t.pieces]
        block({"type": "tool_use", "id": _tool_id(t), "name": t.name, "input": {}}, deltas)
    final_usage = _usage(s, s.output_tokens)
    del final_usage["cache_creation"], final_usage["service_tier"]
    out.append(
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": STOP_REASONS[s.finish], "stop_sequence": None},
                "usage": final_usage,
            },
            "message_delta",
        )
    )
    out.append(sse({"type": "message_stop"}, "message_stop"))
    return out


def _thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


async def messages(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = inc.json
    if inc.body is None:
        return error_response(400, "There was an error parsing the body of your request.")
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            return error_response(400, f"{name}: Field required")
    scenario = inc.scenario(str(body["model"]))
    await first_byte_delay(scenario)
    if scenario.name == "error":
        # Anthropic names the missing model ("model: claude-…"), as the other providers do.
        return error_response(scenario.status, f"model: {body['model']}" if scenario.status == 404 else None)
    s = build_script(FAMILY, scenario, str(body["model"]), body)
    if not _thinking_enabled(body):
        s.reasoning = []
    choice = body.get("tool_choice")
    if scenario.name == "json" and isinstance(choice, dict) and choice.get("type") == "tool":
        s.tools = [ToolCall(str(choice.get("name")), {"name": "mock", "family": FAMILY, "ok": True})]
        s.text, s.finish = [], "tool_calls"
    mid = new_id("msg_01", 22)
    h = headers()
    if not body.get("stream"):
        if s.error_mid or s.drop:
            return error_response(529)
        return json_response(message(s, mid), headers=h)
    return stream_response(events(s, mid), scenario, headers={**h, "cache-control": "no-cache"})


async def count_tokens(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = inc.json
    for name in ("model", "messages"):
        if name not in body:
            return error_response(400, f"{name}: Field required")
    return json_response({"input_tokens": prompt_words(body)}, headers=headers())


def models_list() -> Response:
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": m.replace("-", " ").title(),
            "created_at": "2025-01-01T00:00:00Z",
        }
        for m in MODEL_NAMES
    ]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return json_response(body, headers=headers())


ROUTES = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
