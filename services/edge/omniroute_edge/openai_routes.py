"""OpenAI routes: /v1/chat/completions and /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.formats import openai_chat
from omniroute_edge.client_formats import OPENAI_CHAT
from omniroute_edge.common import json_response, list_models, serve_chat

router = APIRouter()

_CHAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages"],
    "properties": {"model": {"type": "string"}, "messages": {"type": "array", "items": {"type": "object"}},
                   "stream": {"type": "boolean"}}}}}}}


@router.post("/v1/chat/completions", openapi_extra=_CHAT_BODY)
async def chat_completions(request: Request) -> Response:
    return await serve_chat(request, OPENAI_CHAT, openai_chat.request_to_canonical)


@router.get("/v1/models")
async def models(request: Request) -> Response:
    listed = await list_models(request, OPENAI_CHAT)
    if isinstance(listed, Response):
        return listed
    data = [{"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
            for m in listed]
    return json_response({"object": "list", "data": data})
