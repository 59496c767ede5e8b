"""Ollama routes: POST /api/chat (also under /v1/api/chat; NDJSON when streaming, which is
Ollama's default) and GET /api/tags. Registered before the admin proxy, which serves every
other /api/* path."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.formats import ollama
from omniroute_edge.client_formats import OLLAMA
from omniroute_edge.common import json_response, list_models, serve_chat

router = APIRouter()


@router.post("/api/chat")
@router.post("/v1/api/chat")
async def chat(request: Request) -> Response:
    return await serve_chat(request, OLLAMA, ollama.request_to_canonical)


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    listed = await list_models(request, OLLAMA)
    if isinstance(listed, Response):
        return listed
    models = [{"name": m.id, "model": m.id,
               "modified_at": datetime.fromtimestamp(m.created, UTC).isoformat().replace("+00:00", "Z"),
               "size": 0, "digest": "",
               "details": {"format": "", "family": m.owned_by, "families": None,
                           "parameter_size": "", "quantization_level": ""}}
              for m in listed]
    return json_response({"models": models})
