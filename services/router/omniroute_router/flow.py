"""One chat request through the router, in order: key and policy checks, model resolution,
the key's budget, idempotency, key limits, request shaping, exact cache, semantic cache, then
dispatch with fallback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import redis.asyncio as redis

from omniroute.config.routing_spec import PolicySpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.config.watcher import SnapshotHolder
from omniroute.formats.openai_chat import wants_usage_in_stream
from omniroute.limits.cache import cache_key, cacheable
from omniroute.limits.idempotency import Idempotency
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router import admission, budget_gate, policy, semantic
from omniroute_router.accounts import Accounts
from omniroute_router.dedupe import cached, idempotent
from omniroute_router.dispatch import Dispatch, dispatch
from omniroute_router.embedders import GatewayEmbedder
from omniroute_router.errors import RoutingError
from omniroute_router.executors import ExecutorPool
from omniroute_router.plan import plan
from omniroute_router.resolve import Node
from omniroute_router.semantic import SemanticCache
from omniroute_router.shaping import shape
from omniroute_router.shared import Shared
from omniroute_router.usage import RequestRecord

_MAX_LEASE_S = 300.0  # how long a duplicate waits for a first request that may have died


@dataclass
class Call:
    """What the steps of one request share."""

    snapshot: ConfigSnapshot
    key: ApiKey | None
    policies: list[PolicySpec]
    request: router_pb2.ChatRequest
    requested: str  # after policy rewrites
    node: Node
    headers: dict[str, str]  # for the answer's ResponseStart
    record: RequestRecord


class ChatFlow:
    def __init__(self, settings: Settings, config: SnapshotHolder, executors: ExecutorPool,
                 shared: Shared) -> None:
        self._settings = settings
        self._config = config
        self._executors = executors
        self._shared = shared
        self._accounts = Accounts(shared.redis, settings.env, shared.breakers, shared.cooldowns,
                                  shared.headroom)
        self._lease_s = min(settings.upstream_timeout_s, _MAX_LEASE_S)
        self._semantic = SemanticCache(shared.semantic_store, shared.semantic_stats, lambda model: (
            GatewayEmbedder(model, config, executors, shared, self._accounts)))

    async def answer(self, request: router_pb2.ChatRequest,
                     record: RequestRecord) -> AsyncIterator[common_pb2.AnswerEvent]:
        snapshot = self._config.current
        try:
            key, policies, requested, node = policy.admit(snapshot, request.key_id, request.model)
            await budget_gate.check(self._shared.redis, self._settings, key)
        except RoutingError as exc:
            yield common_pb2.AnswerEvent(error=exc.to_proto())
            return
        options = dict(request.options)
        headers: dict[str, str] = {}
        if options.get("progress", "").lower() in ("1", "true", "yes"):
            headers["x-omniroute-progress"] = "enabled"

        call = Call(snapshot, key, policies, request, requested, node, headers, record)

        def produce() -> AsyncIterator[common_pb2.AnswerEvent]:
            return self._limited(call)

        idempotency_key = options.get("idempotency_key", "")
        if not idempotency_key:
            async for event in produce():
                yield event
            return
        variant = f"{request.client_format}:{int(request.stream)}:{request.model}"
        scope = Idempotency.scope(request.key_id, idempotency_key, variant)
        async for event in idempotent(self._shared, scope, request.request_id, lease_s=self._lease_s,
                                      window_s=snapshot.routing.idempotency.window_ms / 1000,
                                      record=record, produce=produce):
            yield event

    async def _limited(self, call: Call) -> AsyncIterator[common_pb2.AnswerEvent]:
        snapshot, key = call.snapshot, call.key
        tokens = 0
        try:
            async with admission.admitted(self._shared.limiter, snapshot, key,
                                          call.request.request_id) as admitted:
                if admitted is not None:
                    call.headers.update(admitted.headers())
                async for event in self._cached(call):
                    if event.WhichOneof("kind") == "usage":
                        tokens = event.usage.input_tokens + event.usage.output_tokens
                    yield event
        except RoutingError as exc:
            yield common_pb2.AnswerEvent(error=exc.to_proto())
        finally:
            if key is not None and tokens and admission.key_limits(snapshot, key).tpm:
                with contextlib.suppress(redis.RedisError):
                    await self._shared.limiter.add_tokens(admission.scope(key), tokens)

    async def _cached(self, call: Call) -> AsyncIterator[common_pb2.AnswerEvent]:
        snapshot, key, request, headers = call.snapshot, call.key, call.request, call.headers
        body = orjson.loads(request.body)
        if shape(body, snapshot.routing):
            # The shaped canonical body replaces the caller's native one (no passthrough).
            shaped = router_pb2.ChatRequest()
            shaped.CopyFrom(request)
            shaped.body, shaped.native_body = orjson.dumps(body), b""
            shaped.client_format = common_pb2.OPENAI_CHAT
            request = shaped

        async def dispatched() -> AsyncIterator[common_pb2.AnswerEvent]:
            ctx = Dispatch(pool=self._executors, shared=self._shared, accounts=self._accounts,
                           snapshot=snapshot, key=key, policies=call.policies,
                           default_timeout_s=self._settings.upstream_timeout_s, start_headers=headers)
            steps = await plan(snapshot, call.node, self._shared.combos, self._accounts, call.requested)
            async for event in dispatch(ctx, request, steps, call.record):
                yield event

        usage_chunk = request.client_format != common_pb2.OPENAI_CHAT or wants_usage_in_stream(body)
        settings, options = snapshot.routing.cache, dict(request.options)
        produce = dispatched
        if semantic.wanted(settings, key, options, body):
            # Inside the exact cache: an exact hit is cheaper than an embedding.
            def produce() -> AsyncIterator[common_pb2.AnswerEvent]:
                return self._semantic.serve(settings, key, call.requested, body, stream=request.stream,
                                            usage_chunk=usage_chunk, headers=headers, record=call.record,
                                            produce=dispatched)

        ttl_s = cacheable(body, options, settings)
        if ttl_s is None:
            async for event in produce():
                yield event
            return
        async for event in cached(self._shared, cache_key(key.id if key else "", call.requested, body),
                                  request.request_id, ttl_s=ttl_s, lease_s=self._lease_s,
                                  stream=request.stream, usage_chunk=usage_chunk, headers=headers,
                                  record=call.record, produce=produce):
            yield event
