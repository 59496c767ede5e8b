"""Family ``gemini``: the Generative Language API (v1beta).

``POST /v1beta/models/{model}:generateContent`` answers one ``GenerateContentResponse``;
``:streamGenerateContent?alt=sse`` sends ``data: {GenerateContentResponse}\\r\\n\\r\\n`` frames (no event
names, no ``[DONE]``; each frame carries ``usageMetadata``, the last one ``finishReason`` and the
full counts); without ``alt=sse`` it streams a JSON array. Also ``:countTokens``, ``GET
/v1beta/models`` and ``GET /v1beta/models/{model}``. The key comes in ``x-goog-api-key`` or the
``key`` query parameter (403 PERMISSION_DENIED without one, 400 API_KEY_INVALID for ``bad…``).
Errors are ``{"error":{"code","message","status"[,"details"]}}`` (pretty-printed, as Google does);
a mid-stream failure is a ``data: {"error":{...}}`` frame.

Usage: ``candidatesTokenCount`` excludes thoughts (``thoughtsTokenCount``); ``totalTokenCount`` is
their sum with ``promptTokenCount``. Thought parts (``{"text":…,"thought":true}``) are sent only when
``generationConfig.thinkingConfig.includeThoughts`` is true, as the real API does; the
``thoughtSignature`` rides on the first answer part of ``mock-reasoning``. Function calls arrive
whole (Gemini does not stream arguments), parallel calls as parts of one frame.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .common import MODEL_NAMES, Script, build_script, new_id, prompt_words
from .serving import MockDrop, first_byte_delay, receive, stream_response

FAMILY = "gemini"

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    404: "models/unknown is not found for API version v1beta.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
_JSON = "application/json; charset=UTF-8"


def pretty(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


def headers() -> dict[str, str]:
    return {"server-timing": "gfet4t7; dur=42", "x-content-type-options": "nosniff", "vary": "Origin"}


def error_body(status: int, message: str | None = None, details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": status,
        "message": message or _MESSAGES.get(status, f"Error {status}"),
        "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if status == 429 and details is None:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    if details:
        err["details"] = details
    return {"error": err}


def error_response(status: int, message: str | None = None, details: list[Any] | None = None) -> Response:
    h = headers()
    if status == 429:
        h["retry-after"] = "1"
    return Response(pretty(error_body(status, message, details)), status, headers=h, media_type=_JSON)


def check_auth(request: Request) -> Response | None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        return error_response(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if key.startswith(("bad", "invalid")):
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return error_response(400, "API key not valid. Please pass a valid API key.", [info])
    return None


def _include_thoughts(body: dict[str, Any]) -> bool:
    gen = body.get("generationConfig") or body.get("generation_config") or {}
    thinking = gen.get("thinkingConfig") or gen.get("thinking_config") or {} if isinstance(gen, dict) else {}
    return bool(
        isinstance(thinking, dict) and (thinking.get("includeThoughts") or thinking.get("include_thoughts"))
    )


def usage(s: Script, *, final: bool = True) -> dict[str, Any]:
    u: dict[str, Any] = {"promptTokenCount": s.input_tokens}
    candidates = s.output_tokens - s.reasoning_tokens
    if final:
        u["candidatesTokenCount"] = candidates
    u["totalTokenCount"] = s.input_tokens + (s.output_tokens if final else 0)
    if s.cached_tokens:
        u["cachedContentTokenCount"] = s.cached_tokens
    u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": s.input_tokens}]
    if final and s.reasoning_tokens:
        u["thoughtsTokenCount"] = s.reasoning_tokens
    return u


def _answer_parts(s: Script, text: list[str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in text]
    parts += [{"functionCall": {"name": t.name, "args": t.arguments}} for t in s.tools]
    if s.reasoning and parts:
        parts[0]["thoughtSignature"] = s.signature
    return parts


def _frame(
    s: Script, rid: str, parts: list[dict[str, Any]], finish: str | None, final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage(s, final=final),
        "modelVersion": s.model,
        "responseId": rid,
    }


def response(s: Script, rid: str, thoughts: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = (
        [{"text": s.full_reasoning, "thought": True}] if thoughts and s.reasoning else []
    )
    parts += _answer_parts(s, [s.full_text] if s.text else [])
    return _frame(s, rid, parts, FINISH[s.finish], True)


def frames(s: Script, rid: str, thoughts: bool) -> list[dict[str, Any] | MockDrop]:
    """One frame per thought piece and text piece, one for all function calls; the last carries
    the finish reason and the full usage."""
    out: list[dict[str, Any] | MockDrop] = []
    if thoughts:
        out += [_frame(s, rid, [{"text": p, "thought": True}], None, False) for p in s.reasoning]
    answer = _answer_parts(s, s.text)
    groups = [[part] for part in answer[: len(s.text)]]
    if s.tools:
        groups.append(answer[len(s.text) :])
    for n, parts in enumerate(groups):
        if n == 2 and (s.drop or s.error_mid):
            out.append(MockDrop() if s.drop else error_body(500))
            return out
        last = n == len(groups) - 1
        out.append(_frame(s, rid, parts, FINISH[s.finish] if last else None, last))
    if not groups:
        out.append(_frame(s, rid, [{"text": ""}], FINISH[s.finish], True))
    return out


def model_info(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "description": f"OmniRoute mock model ({name}).",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


async def models(request: Request) -> Response:
    await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = {"models": [model_info(m) for m in MODEL_NAMES]}
    return Response(pretty(body), headers=headers(), media_type=_JSON)


async def model_action(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    target: str = request.path_params["target"]
    model, _, method = target.partition(":")
    if request.method == "GET":
        if method:
            return error_response(404, f"Method not found: {method}")
        return Response(pretty(model_info(model)), headers=headers(), media_type=_JSON)
    if method not in ("generateContent", "streamGenerateContent", "countTokens"):
        return error_response(404, f"Method not found: {method or 'none'}")
    body = inc.json
    if inc.body is None:
        return error_response(400, "Invalid JSON payload received.")
    if method == "countTokens":
        tokens = prompt_words(body.get("generateContentRequest") or body)
        count = {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}
        return Response(pretty(count), headers=headers(), media_type=_JSON)
    if not isinstance(body.get("contents"), list) or not body["contents"]:
        return error_response(400, "* GenerateContentRequest.contents: contents is not specified\n")
    scenario = inc.scenario(model)
    await first_byte_delay(scenario)
    if scenario.name == "error":
        return error_response(scenario.status)
    s = build_script(FAMILY, scenario, model, body)
    rid = new_id("", 22)
    thoughts = _include_thoughts(body)
    if method == "generateContent":
        if s.error_mid or s.drop:
            return error_response(500)
        return Response(pretty(response(s, rid, thoughts)), headers=headers(), media_type=_JSON)
    items = frames(s, rid, thoughts)
    if request.query_params.get("alt") == "sse":
        sse_frames = [
            f if isinstance(f, MockDrop) else b"data: " + orjson.dumps(f) + b"\r\n\r\n" for f in items
        ]
        return stream_response(sse_frames, scenario, media_type="text/event-stream", headers=headers())
    array: list[bytes | MockDrop] = []
    for i, f in enumerate(items):
        array.append(f if isinstance(f, MockDrop) else (b"[" if i == 0 else b",\r\n") + pretty(f).rstrip())
    array.append(b"]")
    return stream_response(array, scenario, media_type=_JSON, headers=headers())


ROUTES = [
    Route("/v1beta/models", models, methods=["GET"]),
    Route("/v1beta/models/{target:path}", model_action, methods=["GET", "POST"]),
]
