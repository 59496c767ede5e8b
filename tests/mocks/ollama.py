"""Family ``ollama``: ``POST /api/chat`` (NDJSON streaming, the default, or one JSON object),
``GET /api/tags``, ``GET /api/version`` and ``GET /`` ("Ollama is running").

Each stream line is ``{"model","created_at","message":{"role":"assistant","content":…},"done":false}``;
the last has ``"done":true``, ``done_reason`` (``stop`` / ``length``), ``prompt_eval_count``,
``eval_count`` and the durations in nanoseconds. Thinking (``message.thinking``) is sent only when
the request sets ``think``; tool calls arrive whole with arguments as an object. Errors are
``{"error":"…"}`` with the HTTP status; a mid-stream failure is an ``{"error":"…"}`` line. No auth.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .common import MODEL_NAMES, Script, build_script
from .serving import MockDrop, first_byte_delay, receive, stream_response

FAMILY = "ollama"
_JSON = "application/json; charset=utf-8"
_MESSAGES = {
    400: "invalid request (mock-400)",
    401: "unauthorized",
    404: 'model "mock-404" not found, try pulling it first',
    429: "too many requests (mock-429)",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def error_response(status: int, message: str | None = None) -> Response:
    body = orjson.dumps({"error": message or _MESSAGES.get(status, f"error {status}")})
    return Response(body, status, media_type=_JSON)


def created_at() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _final(s: Script) -> dict[str, Any]:
    prompt_ns = s.input_tokens * 100_000
    eval_ns = s.output_tokens * 1_000_000
    return {
        "done": True,
        "done_reason": "length" if s.finish == "length" else "stop",
        "total_duration": 1_000_000 + prompt_ns + eval_ns + 500_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": s.input_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": s.output_tokens,
        "eval_duration": eval_ns,
    }


def _calls(s: Script) -> list[dict[str, Any]]:
    calls = []
    for t in s.tools:
        function: dict[str, Any] = {"index": t.index} if t.index else {}
        function.update(name=t.name, arguments=t.arguments)
        calls.append({"function": function})
    return calls


def chat_object(s: Script, think: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": s.full_text}
    if think and s.reasoning:
        message["thinking"] = s.full_reasoning
    if s.tools:
        message["tool_calls"] = _calls(s)
    return {"model": s.model, "created_at": created_at(), "message": message, **_final(s)}


def lines(s: Script, think: bool) -> list[bytes | MockDrop]:
    def line(message: dict[str, Any], final: dict[str, Any] | None = None) -> bytes:
        obj = {"model": s.model, "created_at": created_at(), "message": {"role": "assistant", **message}}
        obj.update(final or {"done": False})
        return orjson.dumps(obj) + b"\n"

    out: list[bytes | MockDrop] = []
    if think:
        out += [line({"content": "", "thinking": p}) for p in s.reasoning]
    for n, piece in enumerate(s.text):
        if n == 2 and s.drop:
            out.append(MockDrop())
            return out
        if n == 2 and s.error_mid:
            out.append(orjson.dumps({"error": "an error was encountered while running the model"}) + b"\n")
            return out
        out.append(line({"content": piece}))
    if s.tools:
        out.append(line({"content": "", "tool_calls": _calls(s)}))
    out.append(line({"content": ""}, _final(s)))
    return out


async def chat(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    body = inc.json
    if inc.body is None:
        return error_response(400, "invalid character looking for beginning of value")
    if not body.get("model"):
        return error_response(400, "model is required")
    model = str(body["model"])
    scenario = inc.scenario(model)
    await first_byte_delay(scenario)
    if scenario.name == "error":
        return error_response(scenario.status)
    s = build_script(FAMILY, scenario, model, body)
    think = body.get("think") not in (None, False, "")
    if not think:
        s.reasoning = []
    if body.get("stream", True) is False:
        if s.error_mid or s.drop:
            return error_response(500)
        return Response(orjson.dumps(chat_object(s, think)), media_type=_JSON)
    return stream_response(lines(s, think), scenario, media_type="application/x-ndjson")


async def tags(request: Request) -> Response:
    await receive(request, FAMILY)
    models = [
        {
            "name": f"{m}:latest",
            "model": f"{m}:latest",
            "modified_at": "2025-01-01T00:00:00.000000000Z",
            "size": 4_920_753_328,
            "digest": hashlib.sha256(m.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "8.0B",
                "quantization_level": "Q4_K_M",
            },
        }
        for m in MODEL_NAMES
    ]
    return Response(orjson.dumps({"models": models}), media_type=_JSON)


async def version(request: Request) -> Response:
    return Response(orjson.dumps({"version": "0.12.6"}), media_type=_JSON)


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


ROUTES = [
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/version", version, methods=["GET"]),
    Route("/", root, methods=["GET", "HEAD"]),
]
