"""Token counts by the provider itself (Anthropic's /v1/messages/count_tokens, Gemini's
:countTokens), routed like any request: the router resolves the model and picks an account, an
executor makes the call. The router only sends a count to the family that speaks the caller's
format, since the caller's body goes upstream as it is."""

from __future__ import annotations

import uuid

import grpc
import orjson
from fastapi import Request

from omniroute import telemetry
from omniroute.v1 import common_pb2, router_pb2
from omniroute_edge.client_formats import ANTHROPIC, ClientFormat
from omniroute_edge.common import caller_key, edge_state


async def count(request: Request, body: object, client: ClientFormat = ANTHROPIC,
                model: str | None = None) -> int | None:
    """The provider's count, or None when it cannot give one (a provider of another family, or
    it failed). `model`: where the format names it outside the body (Gemini: in the path)."""
    if not isinstance(body, dict):
        return None
    model = model if model is not None else body.get("model")
    if not isinstance(model, str) or not model:
        return None
    key, denied = caller_key(request, client)
    if denied is not None:
        return None
    call = router_pb2.ChatRequest(request_id=uuid.uuid4().hex, key_id=key.id if key else "",
                                  client_format=client.proto, body=orjson.dumps(body),
                                  model=model, operation=common_pb2.OPERATION_COUNT_TOKENS)
    try:
        whole = await edge_state(request).router.ChatWhole(call, metadata=telemetry.grpc_metadata())
        for event in whole.events:
            kind = event.WhichOneof("kind")
            if kind == "error":
                return None
            if kind == "response":
                tokens = orjson.loads(event.response).get("input_tokens")
                return tokens if isinstance(tokens, int) else None
    except (grpc.aio.AioRpcError, orjson.JSONDecodeError):
        return None
    return None
