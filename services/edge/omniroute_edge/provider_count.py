"""Token counts by the provider itself (Anthropic's /v1/messages/count_tokens), routed like any
request: the router resolves the model and picks an account, an executor makes the call."""

from __future__ import annotations

import uuid

import grpc
import orjson
from fastapi import Request

from omniroute import telemetry
from omniroute.v1 import common_pb2, router_pb2
from omniroute_edge.client_formats import ANTHROPIC
from omniroute_edge.common import caller_key, edge_state


async def count(request: Request, body: object) -> int | None:
    """The provider's count, or None when it cannot give one (not Anthropic, or it failed)."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return None
    key, denied = caller_key(request, ANTHROPIC)
    if denied is not None:
        return None
    call = router_pb2.ChatRequest(request_id=uuid.uuid4().hex, key_id=key.id if key else "",
                                  client_format=common_pb2.ANTHROPIC, body=orjson.dumps(body),
                                  model=body["model"], operation=common_pb2.OPERATION_COUNT_TOKENS)
    try:
        async for event in edge_state(request).router.Chat(call, metadata=telemetry.grpc_metadata()):
            kind = event.WhichOneof("kind")
            if kind == "error":
                return None
            if kind == "response":
                tokens = orjson.loads(event.response).get("input_tokens")
                return tokens if isinstance(tokens, int) else None
    except (grpc.aio.AioRpcError, orjson.JSONDecodeError):
        return None
    return None
