"""Gemini routes (Generative Language API v1beta): GET /v1beta/models[/{model}] and
POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse | :countTokens.

The model is the gateway's model id, e.g. `myanthropic/claude-x`: google-genai puts it in the
path unescaped (`models/myanthropic/claude-x:generateContent`), so the route takes the whole
rest of the path and splits the action off at the last colon."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.formats import FormatError, gemini
from omniroute_edge import errors, provider_count, token_count
from omniroute_edge.client_formats import GEMINI
from omniroute_edge.common import caller_key, edge_state, json_response, list_models, read_json, serve_chat

router = APIRouter()

_ACTIONS = ("generateContent", "streamGenerateContent", "countTokens")


def _model_entry(model_id: str, owner: str) -> dict[str, Any]:
    return {"name": f"models/{model_id}", "baseModelId": model_id, "version": "001",
            "displayName": model_id, "description": f"{model_id} via OmniRoute ({owner})",
            "supportedGenerationMethods": list(_ACTIONS)}


@router.get("/v1beta/models")
async def models(request: Request) -> Response:
    listed = await list_models(request, GEMINI)
    if isinstance(listed, Response):
        return listed
    return json_response({"models": [_model_entry(m.id, m.owned_by) for m in listed]})


@router.get("/v1beta/models/{model:path}")
async def model(request: Request, model: str) -> Response:
    listed = await list_models(request, GEMINI)
    if isinstance(listed, Response):
        return listed
    found = next((m for m in listed if m.id == model), None)
    if found is None:
        return errors.error_response(GEMINI, 404, f"models/{model} is not found.")
    return json_response(_model_entry(found.id, found.owned_by))


@router.post("/v1beta/models/{model_action:path}")
async def model_action(request: Request, model_action: str) -> Response:
    model, _, action = model_action.rpartition(":")
    if not model or action not in _ACTIONS:
        return errors.error_response(
            GEMINI, 404, f"Unknown method {action or model_action!r}: use models/<model>:"
                         "generateContent, :streamGenerateContent?alt=sse or :countTokens.")
    if action == "countTokens":
        return await _count_tokens(request, model)
    stream = action == "streamGenerateContent"
    if stream and request.query_params.get("alt") != "sse":
        # The JSON-array stream (no alt=sse) is not served; every SDK asks for SSE.
        return errors.error_response(GEMINI, 400, "streamGenerateContent is served as SSE only: "
                                                  "add ?alt=sse to the URL.")
    return await serve_chat(request, GEMINI,
                            lambda body: gemini.request_to_canonical(body, model=model, stream=stream),
                            model=model)


async def _count_tokens(request: Request, model: str) -> Response:
    _, denied = caller_key(request, GEMINI)
    if denied is not None:
        return denied
    try:
        _, parsed = await read_json(request, edge_state(request).settings.max_body_bytes)
        # countTokens takes either `contents` or a whole `generateContentRequest`.
        if isinstance(parsed, dict) and isinstance(parsed.get("generateContentRequest"), dict):
            parsed = parsed["generateContentRequest"]
        canonical = gemini.request_to_canonical(parsed, model=model)
    except FormatError as exc:
        return errors.error_response(GEMINI, exc.status, exc.message)
    # A Gemini model is counted by Gemini itself (through the router and an executor); any other
    # provider, or a failed provider call, is counted locally below. Same as Anthropic's route.
    counted = await provider_count.count(request, parsed, GEMINI, model)
    if counted is not None:
        return json_response({"totalTokens": counted}, headers={"x-omniroute-token-count": "provider"})
    method = token_count.method()
    return json_response({"totalTokens": token_count.count_canonical(canonical)},
                         headers={"x-omniroute-token-count": method})
