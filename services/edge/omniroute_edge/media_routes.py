"""OpenAI-shaped non-chat routes: /v1/embeddings, /v1/images/generations (POST, and GET to list
their models), /v1/audio/transcriptions (multipart), and the dedicated provider routes
/v1/providers/{provider}/chat/completions|embeddings|images/generations.

The router routes them like chat (model resolution, accounts, fallback, limits, usage); answers
come back in OpenAI's shape whatever the provider speaks."""

from __future__ import annotations

import uuid

import grpc
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute import telemetry
from omniroute.catalog import provider_type
from omniroute.formats import FormatError, embeddings, images, openai_chat, transcription
from omniroute.v1 import common_pb2, router_pb2
from omniroute_edge import errors, multipart_form, refusals
from omniroute_edge.auth import AuthError, authenticate
from omniroute_edge.client_formats import OPENAI_CHAT
from omniroute_edge.common import (
    caller_key,
    edge_state,
    json_response,
    list_models,
    read_json,
    seed_headers,
    serve_chat,
)
from omniroute_edge.options import request_options

router = APIRouter()
# Whisper's own limit; Deepgram and AssemblyAI take more, raise it with the variable.


async def _operation(request: Request, operation: int, body: dict[str, object], *,
                     attachment: common_pb2.Attachment | None = None) -> Response:
    """Send one non-chat request through the router; its JSON answer or an OpenAI error."""
    state = edge_state(request)
    key, denied = caller_key(request, OPENAI_CHAT)
    if denied is not None:
        return denied
    request_id = uuid.uuid4().hex
    headers = seed_headers(request, request_id)
    call = router_pb2.ChatRequest(request_id=request_id, key_id=key.id if key else "",
                                  client_format=common_pb2.OPENAI_CHAT, body=orjson.dumps(body),
                                  model=str(body.get("model") or ""), operation=operation)  # type: ignore[arg-type]
    call.options.update(request_options(request))
    if attachment is not None:
        call.attachment.CopyFrom(attachment)
    try:
        whole = await state.router.ChatWhole(call, metadata=telemetry.grpc_metadata())
        for event in whole.events:
            kind = event.WhichOneof("kind")
            if kind == "start":
                headers.update(event.start.headers)
            elif kind == "error":
                return errors.from_proto(OPENAI_CHAT, event.error, headers)
            elif kind == "response":
                return Response(event.response, media_type="application/json", headers=headers)
    except grpc.aio.AioRpcError as exc:
        return errors.from_grpc(OPENAI_CHAT, exc, headers)
    return errors.error_response(OPENAI_CHAT, 502, "The answer ended before it started.",
                                 type_="server_error", code="empty_answer", headers=headers)


async def _json_body(request: Request) -> dict[str, object]:
    # The key first: an anonymous caller gets a 401, never has its body (up to the size limit)
    # read and parsed, and learns nothing of how bodies are validated.
    state = edge_state(request)
    try:
        authenticate(request, state.config.current, state.settings.require_api_key)
    except AuthError as exc:
        # Logged and audited as caller_key does (refusals.py); the caller gets the same 401.
        refused_id = refusals.record(request, state, OPENAI_CHAT, status=401, error_class="invalid_api_key",
                                     reason=f"{exc.reason}: {exc.message}", key=exc.key, authenticated=False)
        refusals.audit_key_refusal(request, state, exc, request_id=refused_id)
        raise FormatError(exc.message, status=401, code="invalid_api_key") from exc
    _, parsed = await read_json(request, state.settings.max_body_bytes)
    if not isinstance(parsed, dict):
        raise FormatError("The request body must be a JSON object.")
    return parsed


def _for_provider(body: dict[str, object], provider: str, request: Request) -> dict[str, object]:
    """Dedicated provider routes: `model` gets the provider's id when it names none; a model of
    another provider is refused."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("'model' is required.", param="model")
    snapshot = edge_state(request).config.current
    known = snapshot.providers.get(provider)
    aliases = {provider}
    if known is not None:
        kind = provider_type(known.type)
        if kind is not None and kind.prefix:
            aliases.add(kind.prefix)
    else:
        # A type prefix (e.g. "oai") names the configured provider of that type.
        matches = [p for p in snapshot.providers.values()
                   if (k := provider_type(p.type)) is not None and k.prefix == provider]
        if not matches:
            raise FormatError(f"No provider named {provider!r} is configured.", status=404,
                              code="model_not_found")
    head, slash, _ = model.partition("/")
    if slash and head in set(snapshot.providers) | _all_prefixes(snapshot):
        if head not in aliases:
            raise FormatError(f"The model {model!r} belongs to the provider {head!r}, not {provider!r}.",
                              param="model", code="model_provider_mismatch")
        return body
    return {**body, "model": f"{provider}/{model}"}


def _all_prefixes(snapshot: object) -> set[str]:
    prefixes = set()
    for p in getattr(snapshot, "providers", {}).values():
        kind = provider_type(p.type)
        if kind is not None and kind.prefix:
            prefixes.add(kind.prefix)
    return prefixes


async def _models_of(request: Request, kind: str) -> Response:
    listed = await list_models(request, OPENAI_CHAT)
    if isinstance(listed, Response):
        return listed
    data = [{"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
            for m in listed if m.kind == kind]
    return json_response({"object": "list", "data": data})


@router.post("/v1/embeddings")
async def create_embeddings(request: Request) -> Response:
    try:
        body = embeddings.validate_request(await _json_body(request))
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    return await _operation(request, common_pb2.OPERATION_EMBEDDINGS, body)


@router.get("/v1/embeddings")
async def embedding_models(request: Request) -> Response:
    return await _models_of(request, "embedding")


@router.post("/v1/images/generations")
async def generate_images(request: Request) -> Response:
    try:
        body = images.validate_request(await _json_body(request))
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    return await _operation(request, common_pb2.OPERATION_IMAGES, body)


@router.get("/v1/images/generations")
async def image_models(request: Request) -> Response:
    return await _models_of(request, "image")


@router.post("/v1/audio/transcriptions")
async def transcribe(request: Request) -> Response:
    _, denied = caller_key(request, OPENAI_CHAT)
    if denied is not None:
        return denied
    try:
        raw = await _read_upload(request)
        form = multipart_form.parse(request.headers.get("content-type", ""), raw)
        if "file" not in form.files:
            raise FormatError("The 'file' field (the audio) is required.", param="file")
        if not form.fields.get("model"):
            raise FormatError("The 'model' field is required, e.g. 'deepgram/nova-3'.", param="model")
        filename, declared, data = form.files["file"]
        content_type = transcription.audio_type(filename, declared)
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    body: dict[str, object] = {k: v for k, v in form.fields.items()
                               if k in ("model", "language", "prompt", "temperature")}
    return await _operation(request, common_pb2.OPERATION_TRANSCRIPTION, body,
                            attachment=common_pb2.Attachment(data=data, filename=filename,
                                                             content_type=content_type))


async def _read_upload(request: Request) -> bytes:
    """The whole upload, refused with 413 as soon as it passes the limit (checked on the declared
    length first, then while reading: a lying Content-Length does not get past it)."""
    max_bytes = edge_state(request).settings.max_audio_bytes
    limit = max_bytes + 64 * 1024  # room for the form's other fields and boundaries
    message = (f"The audio file is too large: the limit is {max_bytes // (1024 * 1024)} MB "
               f"({max_bytes} bytes).")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FormatError(message, status=413, param="file", code="file_too_large")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise FormatError(message, status=413, param="file", code="file_too_large")
    return bytes(body)


@router.post("/v1/providers/{provider}/chat/completions")
async def provider_chat(provider: str, request: Request) -> Response:
    def to_canonical(parsed: object) -> dict[str, object]:
        if not isinstance(parsed, dict):
            raise FormatError("The request body must be a JSON object.")
        return openai_chat.request_to_canonical(_for_provider(parsed, provider, request))
    # The body is re-read from the canonical form: the prefixed model must reach the router.
    return await serve_chat(_Rewritten(request, provider), OPENAI_CHAT, to_canonical)


@router.post("/v1/providers/{provider}/embeddings")
async def provider_embeddings(provider: str, request: Request) -> Response:
    try:
        body = embeddings.validate_request(_for_provider(await _json_body(request), provider, request))
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    return await _operation(request, common_pb2.OPERATION_EMBEDDINGS, body)


@router.post("/v1/providers/{provider}/images/generations")
async def provider_images(provider: str, request: Request) -> Response:
    try:
        body = images.validate_request(_for_provider(await _json_body(request), provider, request))
    except FormatError as exc:
        return errors.error_response(OPENAI_CHAT, exc.status, exc.message, param=exc.param, code=exc.code)
    return await _operation(request, common_pb2.OPERATION_IMAGES, body)


class _Rewritten(Request):
    """The caller's request whose JSON body gets the provider prefix before serve_chat reads it
    (serve_chat sends OpenAI bodies to the router byte for byte)."""

    def __init__(self, request: Request, provider: str) -> None:
        super().__init__(request.scope, request.receive)
        self._provider = provider
        self._original = request

    async def stream(self):  # type: ignore[no-untyped-def,override]
        raw = bytearray()
        async for piece in self._original.stream():
            raw += piece
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield bytes(raw)
            return
        if isinstance(parsed, dict):
            try:
                parsed = _for_provider(parsed, self._provider, self._original)
            except FormatError:
                pass  # to_canonical raises it again, answered as a 400
            yield orjson.dumps(parsed)
            return
        yield bytes(raw)
