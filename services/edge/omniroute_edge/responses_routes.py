"""OpenAI Responses: POST /v1/responses (typed SSE when streaming). Stateless: the caller sends
the whole conversation (`store: false` semantics; previous_response_id is refused)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.formats import openai_responses
from omniroute_edge.client_formats import OPENAI_RESPONSES
from omniroute_edge.common import serve_chat

router = APIRouter()


@router.post("/v1/responses")
async def responses(request: Request) -> Response:
    return await serve_chat(request, OPENAI_RESPONSES, openai_responses.request_to_canonical)
