"""OpenAI routes: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter, Request
from omniroute.formats import FormatError, openai_chat
from omniroute.v1 import router_pb2
from starlette.responses import Response

from omniroute_edge import errors
from omniroute_edge.answer import answer
from omniroute_edge.auth import AuthError, authenticate
from omniroute_edge.client_formats import OPENAI_CHAT
from omniroute_edge.options import request_options
from omniroute_edge.state import EdgeState

router = APIRouter()

_CHAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages"],
    "properties": {"model": {"type": "string"}, "messages": {"type": "array", "items": {"type": "object"}},
                   "stream": {"type": "boolean"}}}}}}}


def _state(request: Request) -> EdgeState:
    state: EdgeState = request.app.state.edge
    return state


async def read_json(request: Request, limit: int) -> tuple[bytes, object]:
    """The raw body and its JSON, refusing oversized or malformed bodies with a FormatError."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FormatError(f"The request body is larger than {limit} bytes.", status=413)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise FormatError(f"The request body is larger than {limit} bytes.", status=413)
    if not body:
        raise FormatError("The request body is empty: send a JSON object.")
    try:
        return bytes(body), orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"The request body is not valid JSON: {exc}") from exc


@router.post("/v1/chat/completions", openapi_extra=_CHAT_BODY)
async def chat_completions(request: Request) -> Response:
    state = _state(request)
    try:
        key = authenticate(request, state.config.current, state.settings.require_api_key)
    except AuthError as exc:
        return errors.error_response(OPENAI_CHAT, 401, exc.message, code="invalid_api_key")
    try:
        raw, parsed = await read_json(request, state.settings.max_body_bytes)
        body = openai_chat.request_to_canonical(parsed)
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    request_id = uuid.uuid4().hex
    stream = bool(body.get("stream"))
    call = router_pb2.ChatRequest(request_id=request_id, key_id=key.id if key else "",
                                  client_format=OPENAI_CHAT.proto, body=raw,
                                  stream=stream, model=body["model"], options=request_options(request))
    return await answer(state.router, OPENAI_CHAT, call, {"x-request-id": request_id},
                        {"model": body["model"], "request_id": request_id,
                         "include_usage": openai_chat.wants_usage_in_stream(body)})


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    state = _state(request)
    try:
        key = authenticate(request, state.config.current, state.settings.require_api_key)
    except AuthError as exc:
        return errors.error_response(OPENAI_CHAT, 401, exc.message, code="invalid_api_key")
    listing = await state.router.ListModels(router_pb2.ListModelsRequest(key_id=key.id if key else ""))
    data = [{"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
            for m in listing.models]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
