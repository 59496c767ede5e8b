"""Family ``openai``: chat completions (JSON and SSE), models, embeddings, image generations.

Wire format as api.openai.com sends it: compact JSON, ``data: {...}\\n\\n`` frames ending with
``data: [DONE]\\n\\n``; with ``stream_options.include_usage`` every chunk carries ``"usage":null``
and a last chunk with ``"choices":[]`` carries the usage. A mid-stream failure is a
``data: {"error":{...}}`` frame and the stream ends without ``[DONE]``. Errors are
``{"error":{"message","type","param","code"}}``. Headers: ``x-request-id``, ``openai-version``,
``openai-processing-ms``, ``x-ratelimit-*``; ``retry-after`` on 429.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import anthropic as anthropic_family
from .common import (
    MODEL_NAMES,
    SCRIPTED,
    SCRIPTED_MODELS,
    Script,
    build_script,
    count_words,
    credential,
    new_id,
    pick_scenario,
)
from .serving import MockDrop, first_byte_delay, json_response, receive, sse, stream_response

FAMILY = "openai"
CREATED = 1_700_000_000
FINGERPRINT = "fp_mock0001"

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (mock-400)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (mock-401)."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (mock-429)."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def headers(request_id: str | None = None) -> dict[str, str]:
    return {
        "x-request-id": request_id or new_id("req_", 32),
        "openai-version": "2020-10-01",
        "openai-processing-ms": "7",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": "29999990",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-reset-tokens": "0s",
    }


def error_body(status: int, message: str | None = None, param: str | None = None) -> dict[str, Any]:
    etype, code, default = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "")
    )
    return {
        "error": {
            "message": message or default or f"Error {status}",
            "type": etype,
            "param": param,
            "code": code,
        }
    }


def error_response(status: int, message: str | None = None, param: str | None = None) -> Response:
    h = headers()
    if status == 429:
        h["retry-after"] = "1"
        h["x-ratelimit-remaining-requests"] = "0"
    return json_response(error_body(status, message, param), status, h)


def check_auth(request: Request) -> Response | None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        return error_response(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if auth[7:].strip().startswith(("bad", "invalid")):
        return error_response(401, "Incorrect API key provided.")
    return None


def usage(s: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": s.input_tokens,
        "completion_tokens": s.output_tokens,
        "total_tokens": s.input_tokens + s.output_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": s.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(s: Script, i: int) -> dict[str, Any]:
    t = s.tools[i]
    return {
        "id": f"call_mock{t.index}",
        "type": "function",
        "function": {"name": t.name, "arguments": t.json},
    }


def completion(s: Script, cid: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": s.full_text if s.text or not s.tools else None,
    }
    if s.scenario.name == "reasoning-content":
        message["reasoning_content"] = s.full_reasoning
    if s.tools:
        message["tool_calls"] = [_tool_call(s, i) for i in range(len(s.tools))]
    message["refusal"] = None
    message["annotations"] = []
    return {
        "id": cid,
        "object": "chat.completion",
        "created": CREATED,
        "model": s.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": s.finish}],
        "usage": usage(s),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def chunks(s: Script, cid: str, include_usage: bool) -> list[bytes | MockDrop]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": s.model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return sse(obj)

    out: list[bytes | MockDrop] = []
    first: dict[str, Any] = {"role": "assistant", "content": "" if s.text else None}
    if s.tools and not s.text and not s.reasoning:
        t = s.tools[0]
        header = {"index": 0, "id": f"call_mock{t.index}", "type": "function"}
        first["tool_calls"] = [{**header, "function": {"name": t.name, "arguments": ""}}]
    first["refusal"] = None
    out.append(chunk(first))
    if s.scenario.name == "reasoning-content":
        out += [chunk({"content": None, "reasoning_content": p}) for p in s.reasoning]
    for n, piece in enumerate(s.text):
        if n == 2 and s.error_mid:
            out.append(sse(error_body(500)))
            return out
        if n == 2 and s.drop:
            out.append(MockDrop())
            return out
        out.append(chunk({"content": piece}))
    for i, t in enumerate(s.tools):
        if i > 0 or s.text or s.reasoning:
            call = {"index": i, "id": f"call_mock{t.index}", "type": "function"}
            out.append(chunk({"tool_calls": [{**call, "function": {"name": t.name, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in t.pieces]
    out.append(chunk({}, s.finish))
    if include_usage:
        out.append(
            sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": s.model,
                    "service_tier": "default",
                    "system_fingerprint": FINGERPRINT,
                    "choices": [],
                    "usage": usage(s),
                }
            )
        )
    out.append(b"data: [DONE]\n\n")
    return out


async def chat_completions(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = inc.json
    if inc.body is None or not isinstance(body.get("model"), str):
        return error_response(400, "We could not parse the JSON body of your request.", "model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return error_response(400, "Missing required parameter: 'messages'.", "messages")
    scenario = inc.scenario(body["model"])
    await first_byte_delay(scenario)
    if scenario.name == "error":
        return error_response(scenario.status)
    s = build_script(FAMILY, scenario, body["model"], body)
    cid = new_id("chatcmpl-", 29)
    h = headers()
    if not body.get("stream"):
        if s.error_mid or s.drop:
            return error_response(500)
        return json_response(completion(s, cid), headers=h)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return stream_response(chunks(s, cid, include_usage), scenario, headers=h)


async def list_models(request: Request) -> Response:
    await receive(request, FAMILY)
    if "anthropic-version" in request.headers:
        return anthropic_family.models_list()
    if (denied := check_auth(request)) is not None:
        return denied
    caller = credential(request.headers)
    if caller in SCRIPTED and (scripted := pick_scenario("", request.headers)).name == "error":
        return error_response(scripted.status)
    names = SCRIPTED_MODELS.get(caller) or [*MODEL_NAMES, "mock-embedding", "mock-image"]
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "omniroute-mock"} for m in names]
    return json_response({"object": "list", "data": data}, headers=headers())


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [(int.from_bytes(raw[i * 4 : i * 4 + 4], "little") / 2**31) - 1.0 for i in range(dims)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


async def embeddings(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = inc.json
    model = body.get("model")
    raw_input = body.get("input")
    if not isinstance(model, str) or raw_input in (None, "", []):
        return error_response(400, "'input' and 'model' are required.", "input")
    scenario = inc.scenario(model)
    if scenario.name == "error":
        return error_response(scenario.status)
    if isinstance(raw_input, str) or (
        isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int)
    ):
        inputs: list[Any] = [raw_input]
    else:
        inputs = list(raw_input)
    dims_raw = body.get("dimensions")
    dims = dims_raw if isinstance(dims_raw, int) else 16
    data: list[dict[str, Any]] = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(str(x) for x in item)
        tokens += count_words(text) if isinstance(item, str) else len(item)
        vector = embedding_vector(text, dims)
        value: Any = vector
        if body.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    result = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(result, headers=headers())


#: A 1x1 transparent PNG.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


async def image_generations(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := check_auth(request)) is not None:
        return denied
    body = inc.json
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return error_response(400, "Missing required parameter: 'prompt'.", "prompt")
    model = str(body.get("model") or "dall-e-2")
    scenario = inc.scenario(model)
    if scenario.name == "error":
        return error_response(scenario.status)
    n_raw = body.get("n")
    n = n_raw if isinstance(n_raw, int) else 1
    b64 = body.get("response_format") == "b64_json" or model.startswith("gpt-image")
    data = [
        {"b64_json": PNG_1X1, "revised_prompt": prompt}
        if b64
        else {"url": f"https://images.mock.invalid/img-{i}.png", "revised_prompt": prompt}
        for i in range(n)
    ]
    result: dict[str, Any] = {"created": int(time.time()), "data": data}
    if model.startswith("gpt-image"):
        words = count_words(prompt)
        result["usage"] = {
            "input_tokens": words,
            "output_tokens": 272 * n,
            "total_tokens": words + 272 * n,
            "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
        }
    return json_response(result, headers=headers())


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/images/generations", image_generations, methods=["POST"]),
]
