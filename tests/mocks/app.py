"""One Starlette app serving every family's routes, plus the recorder under ``/_mock``.

Paths do not collide: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/images/generations``,
``/v1/models`` (openai; the Anthropic model list when ``anthropic-version`` is sent),
``/v1/responses`` (openai-responses), ``/v1/messages[/count_tokens]`` (anthropic),
``/v1beta/models…`` (gemini), ``/api/chat``, ``/api/tags``, ``/api/version``, ``/`` (ollama).

Recorder: ``GET /_mock/requests[?family=…&path=…]`` -> ``{"requests": [...]}`` (each with seq,
family, method, path, query, headers (lower-case), body (parsed JSON or null), raw_body, time);
``DELETE /_mock/requests`` clears it; ``GET /_mock/health``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import anthropic, gemini, media, ollama, openai_chat, openai_responses
from .common import Recorder
from .serving import json_response
from .set_headers import SetHeaders


async def list_requests(request: Request) -> Response:
    recorder: Recorder = request.app.state.recorder
    items = recorder.all(family=request.query_params.get("family"), path=request.query_params.get("path"))
    return json_response({"requests": [r.as_json() for r in items]})


async def clear_requests(request: Request) -> Response:
    recorder: Recorder = request.app.state.recorder
    count = len(recorder)
    recorder.clear()
    return json_response({"cleared": count})


async def health(request: Request) -> Response:
    return json_response({"ok": True})


def create_app(recorder: Recorder | None = None) -> Starlette:
    """The mock upstream ASGI app; its recorder is ``app.state.recorder``."""
    routes = [
        Route("/_mock/requests", list_requests, methods=["GET"]),
        Route("/_mock/requests", clear_requests, methods=["DELETE"]),
        Route("/_mock/health", health, methods=["GET"]),
        *media.ROUTES,  # before gemini's catch-all /v1beta/models/{target:path}
        *openai_chat.ROUTES,
        *openai_responses.ROUTES,
        *anthropic.ROUTES,
        *gemini.ROUTES,
        *ollama.ROUTES,
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SetHeaders)])  # x-mock-set-<header>
    app.state.recorder = recorder if recorder is not None else Recorder()
    return app
