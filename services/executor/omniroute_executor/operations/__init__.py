"""Non-chat operations (embeddings, images, transcription, model lists, token counts, tests,
OAuth token calls): one answer each, `start` + `response` (+ `usage`), or one error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import orjson

from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor.clients import HttpClients
from omniroute_executor.families.base import auth_headers
from omniroute_executor.operations import audio, control, media
from omniroute_executor.operations.upstream import Json, OperationError, exchange, refuse, timeout

ChatCall = Callable[[executor_pb2.ExecuteRequest], AsyncIterator[common_pb2.AnswerEvent]]


async def run(clients: HttpClients, request: executor_pb2.ExecuteRequest,
              default_timeout_s: float, chat: ChatCall) -> AsyncIterator[common_pb2.AnswerEvent]:
    """`request.operation` says which; `request.body` is the caller's body (JSON) in its own format."""
    target = request.target
    try:
        body = _body(request.body)
        if request.operation.kind == common_pb2.OPERATION_TEST:
            answer, usage = await _test(clients, request, default_timeout_s, chat), None
        else:
            answer, usage = await _one(clients, request, body, default_timeout_s)
    except OperationError as exc:
        yield common_pb2.AnswerEvent(error=exc.error)
        return
    yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(
        provider=target.provider_id, connection=target.connection, model=target.model))
    yield common_pb2.AnswerEvent(response=orjson.dumps(answer), format=common_pb2.OPENAI_CHAT)
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


def _body(raw: bytes) -> Json:
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise refuse(400, f"the request body is not valid JSON: {exc}", code="invalid_body") from exc
    if not isinstance(body, dict):
        raise refuse(400, "the request body is not a JSON object", code="invalid_body")
    return body


async def _one(clients: HttpClients, request: executor_pb2.ExecuteRequest, body: Json,
               default_timeout_s: float) -> tuple[Json, common_pb2.Usage | None]:
    target, op = request.target, request.operation.kind
    client = clients.get(target.proxy_url)
    limit = timeout(target, default_timeout_s)
    if op == common_pb2.OPERATION_EMBEDDINGS:
        return await media.embed(client, target, body, limit)
    if op == common_pb2.OPERATION_IMAGES:
        return await media.generate_images(client, target, body, limit)
    if op == common_pb2.OPERATION_TRANSCRIPTION:
        answer = await audio.transcribe(client, target, body, request.operation.attachment, limit)
        return answer, _audio_usage(answer)
    if op == common_pb2.OPERATION_LIST_MODELS:
        return await control.list_models(client, target, limit), None
    if op == common_pb2.OPERATION_COUNT_TOKENS:
        return await control.count_tokens(client, target, body, limit), None
    if op == common_pb2.OPERATION_OAUTH_TOKEN:
        return await control.oauth_token(client, body, limit), None
    raise refuse(400, f"unknown operation {op}")


def _audio_usage(answer: Json) -> common_pb2.Usage | None:
    """Speech to text is billed by the audio's length, not by tokens: the usage row carries the
    duration the provider reported (in the answer's `duration`, seconds) as `audio_seconds`."""
    duration = answer.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0:
        return None
    return common_pb2.Usage(audio_seconds=float(duration))


async def _test(clients: HttpClients, request: executor_pb2.ExecuteRequest, default_timeout_s: float,
                chat: ChatCall) -> Json:
    """The cheapest real call that proves the account works: one chat token where the provider
    chats, else its model list. Latency is measured here, next to the provider."""
    target = request.target
    started = time.monotonic()
    capabilities = target.params.get("capabilities", "chat").split(",")
    if "chat" in capabilities:
        probe = executor_pb2.ExecuteRequest(  # canonical body (format unspecified), not streamed
            request_id=request.request_id, target=target, chat=executor_pb2.ChatCall(stream=False),
            body=orjson.dumps({"model": target.model, "max_tokens": 1,
                               "messages": [{"role": "user", "content": "ping"}]}))
        async for event in chat(probe):
            if event.WhichOneof("kind") == "error":
                raise OperationError(event.error)
    else:
        await _probe_audio(clients, target, default_timeout_s)
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1), "model": target.model}


async def _probe_audio(clients: HttpClients, target: executor_pb2.Target, default_timeout_s: float) -> None:
    """Audio-only providers: an authenticated read that costs nothing."""
    paths = {"deepgram": ("/v1/projects", {"authorization": f"Token {target.api_key}"}),
             "assemblyai": ("/v2/transcript?limit=1", {"authorization": target.api_key})}
    if target.family not in paths:
        raise refuse(400, f"The provider {target.provider_id!r} cannot be tested.")
    path, default = paths[target.family]
    await exchange(clients.get(target.proxy_url), target.family, "GET", f"{target.base_url}{path}",
                   timeout_=timeout(target, default_timeout_s),
                   headers={**auth_headers(target, default), **target.headers})
