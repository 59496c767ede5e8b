"""What every client route shares: reading the body, authenticating, calling the router and
the answer headers. A route module only says how its format maps to the canonical request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import orjson
from fastapi import Request
from starlette.responses import Response

from omniroute.config.snapshot import ApiKey
from omniroute.formats import FormatError, openai_chat
from omniroute.v1 import common_pb2, router_pb2
from omniroute_edge import errors, refusals
from omniroute_edge.answer import answer
from omniroute_edge.auth import AuthError, authenticate
from omniroute_edge.client_formats import ClientFormat
from omniroute_edge.options import request_options
from omniroute_edge.state import EdgeState

Json = dict[str, Any]
_OFF = {"", "0", "false", "no", "off", "disabled"}

# Request headers that say how to read the caller's body (ChatRequest.caller_headers): an
# upstream of the caller's own format gets them with the passthrough body (executor families).
CALLER_HEADERS = ("anthropic-beta",)


def edge_state(request: Request) -> EdgeState:
    state: EdgeState = request.app.state.edge
    return state


async def read_json(request: Request, limit: int) -> tuple[bytes, object]:
    """The raw body and its JSON, refusing oversized or malformed bodies with a FormatError."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FormatError(f"The request body is larger than {limit} bytes.", status=413)
    body = bytearray()
    timeout_s = edge_state(request).settings.body_timeout_s
    try:
        # A client that trickles its body must not hold a connection and a task forever.
        async with asyncio.timeout(timeout_s):
            async for piece in request.stream():
                body += piece
                if len(body) > limit:
                    raise FormatError(f"The request body is larger than {limit} bytes.", status=413)
    except TimeoutError as exc:
        raise FormatError(f"The request body did not arrive within {timeout_s:g} s.", status=408) from exc
    if not body:
        raise FormatError("The request body is empty: send a JSON object.")
    try:
        return bytes(body), orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"The request body is not valid JSON: {exc}") from exc


def caller_key(request: Request, fmt: ClientFormat) -> tuple[ApiKey | None, Response | None]:
    """(the caller's key, None), or (None, a 401 in the caller's format; logged, see
    refusals.py)."""
    state = edge_state(request)
    try:
        return authenticate(request, state.config.current, state.settings.require_api_key), None
    except AuthError as exc:
        # The log line names why (revoked, expired, rotated out …) and which key, if any.
        refused_id = refusals.record(request, state, fmt, status=401, error_class="invalid_api_key",
                                     reason=f"{exc.reason}: {exc.message}", key=exc.key, authenticated=False)
        refusals.audit_key_refusal(request, state, exc, request_id=refused_id)
        return None, errors.error_response(fmt, 401, exc.message, type_="authentication_error",
                                           code="invalid_api_key")


def seed_headers(request: Request, request_id: str) -> dict[str, str]:
    """Headers every chat answer carries: the gateway's request id (also under x-request-id
    unless the caller chose its own, which is echoed instead), the echoed Idempotency-Key and
    whether progress reporting was asked for."""
    headers = {"x-omniroute-request-id": request_id,
               "x-request-id": request.headers.get("x-request-id") or request_id}
    if request.headers.get("idempotency-key"):
        headers["idempotency-key"] = request.headers["idempotency-key"]
    if request.headers.get("x-omniroute-progress", "").strip().lower() not in _OFF:
        headers["x-omniroute-progress"] = "enabled"
    return headers


async def serve_chat(request: Request, fmt: ClientFormat, to_canonical: Callable[[object], Json],
                     *, model: str = "") -> Response:
    """One chat request in `fmt`: authenticate, translate to canonical, answer in `fmt`.
    `model`: the model the route names (Gemini's is in the URL), for a refusal's record."""
    state = edge_state(request)
    started = time.time()
    key, denied = caller_key(request, fmt)
    if denied is not None:
        return denied
    raw, parsed = b"", None
    try:
        raw, parsed = await read_json(request, state.settings.max_body_bytes)
        canonical = to_canonical(parsed)
    except FormatError as exc:
        # Refused before the router saw it: the edge records it (status, class, reason).
        named = parsed.get("model") if isinstance(parsed, dict) else None
        stream = parsed.get("stream") if isinstance(parsed, dict) else None
        refused_id = refusals.record(
            request, state, fmt, status=exc.status, error_class=exc.code or _error_class(fmt, exc.status),
            reason=exc.message, key=key, authenticated=True, body=raw, started=started,
            model=model or (named if isinstance(named, str) else ""), stream=stream is True)
        return errors.error_response(fmt, exc.status, exc.message, param=exc.param, code=exc.code,
                                     headers={"x-omniroute-request-id": refused_id})
    request_id = uuid.uuid4().hex
    stream = bool(canonical.get("stream"))
    model = str(canonical["model"])
    if fmt.proto == common_pb2.OPENAI_CHAT:
        # The caller's body is already canonical: sent as is, no second copy.
        call = router_pb2.ChatRequest(body=raw)
    else:
        call = router_pb2.ChatRequest(body=orjson.dumps(canonical), native_body=raw)
    call.request_id, call.key_id, call.client_format = request_id, key.id if key else "", fmt.proto
    call.stream, call.model = stream, model
    call.options.update(request_options(request))
    call.caller_headers.update({name: request.headers[name] for name in CALLER_HEADERS
                                if name in request.headers})
    include_usage = openai_chat.wants_usage_in_stream(canonical) if fmt.proto == common_pb2.OPENAI_CHAT \
        else True
    return await answer(state.router, fmt, call, seed_headers(request, request_id),
                        {"model": model, "request_id": request_id, "include_usage": include_usage},
                        progress_interval_s=state.settings.progress_interval_s)


async def list_models(request: Request, fmt: ClientFormat) -> list[router_pb2.ModelInfo] | Response:
    """The models this caller may name (from the router), or an error in the caller's format."""
    key, denied = caller_key(request, fmt)
    if denied is not None:
        return denied
    try:
        listing = await edge_state(request).router.ListModels(
            router_pb2.ListModelsRequest(key_id=key.id if key else ""))
    except grpc.aio.AioRpcError as exc:
        return errors.from_grpc(fmt, exc)
    return list(listing.models)


def _error_class(fmt: ClientFormat, status: int) -> str:
    """The error type the caller's format gives this status (what the caller was told)."""
    error: Any = orjson.loads(fmt.error_json(status, "")).get("error")
    kind = error.get("type") or error.get("status") if isinstance(error, dict) else None
    return str(kind or "invalid_request_error")


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)
