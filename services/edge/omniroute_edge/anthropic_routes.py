"""Anthropic routes: POST /v1/messages (SSE with event names when streaming) and
POST /v1/messages/count_tokens (by the provider when it is Anthropic, else locally: see
token_count.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.formats import FormatError, anthropic
from omniroute_edge import errors, provider_count, token_count
from omniroute_edge.client_formats import ANTHROPIC
from omniroute_edge.common import caller_key, edge_state, json_response, read_json, serve_chat

router = APIRouter()


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    return await serve_chat(request, ANTHROPIC, anthropic.request_to_canonical)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    _, denied = caller_key(request, ANTHROPIC)
    if denied is not None:
        return denied
    try:
        _, parsed = await read_json(request, edge_state(request).settings.max_body_bytes)
        canonical = anthropic.request_to_canonical(parsed)
    except FormatError as exc:
        return errors.error_response(ANTHROPIC, exc.status, exc.message, param=exc.param)
    # An Anthropic model is counted by Anthropic itself (through the router and an executor);
    # any other provider, or a failed provider call, is counted locally below.
    counted = await provider_count.count(request, parsed)
    if counted is not None:
        return json_response({"input_tokens": counted, "x_omniroute": {"count_method": "provider"}},
                             headers={"x-omniroute-token-count": "provider"})
    method = token_count.method()
    return json_response({"input_tokens": token_count.count_canonical(canonical),
                          "x_omniroute": {"count_method": method}},
                         headers={"x-omniroute-token-count": method})
