"""The router's pipelines, built once per process: the request path as ordered lists of stages
(pipeline/), one for chat and one for the other operations, and the stateless mode.

chat:       record → guard → admit → budget → idempotency → key limits → shaping → exact cache
            → semantic cache → plan → dispatch
operations: record → guard → admit → capability → budget → idempotency → key limits → plan
            → dispatch
stateless:  admit → stateless dispatch (Redis away and OMNIROUTE_STATE_FAIL_OPEN on: chat only)
"""

from __future__ import annotations

from dataclasses import dataclass

from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.executor_pool import ExecutorPool
from omniroute.settings import Settings
from omniroute_router.caches.embedders import GatewayEmbedder
from omniroute_router.caches.semantic import SemanticCache
from omniroute_router.dispatch import stateless
from omniroute_router.pipeline.admit import admit
from omniroute_router.pipeline.budget import BudgetGate
from omniroute_router.pipeline.call import Call, Events, Next, Pipeline, compose
from omniroute_router.pipeline.capability import capable
from omniroute_router.pipeline.dispatch import DispatchStage
from omniroute_router.pipeline.exact_cache import ExactCacheStage
from omniroute_router.pipeline.guard import Guard
from omniroute_router.pipeline.idempotency import Idempotent
from omniroute_router.pipeline.key_limits import KeyLimits
from omniroute_router.pipeline.plan import Plan
from omniroute_router.pipeline.record import Record
from omniroute_router.pipeline.semantic_cache import SemanticCacheStage
from omniroute_router.pipeline.shaping import shaping
from omniroute_router.selection.accounts import Accounts
from omniroute_router.selection.capability import usage_subject
from omniroute_router.state import RouterState

_MAX_LEASE_S = 300.0  # how long a duplicate waits for a first request that may have died


@dataclass
class Pipelines:
    chat: Pipeline
    operations: Pipeline


def build(settings: Settings, config: SnapshotHolder, pool: ExecutorPool, state: RouterState,
          publisher: EventPublisher) -> Pipelines:
    timeout_s = settings.upstream_timeout_s
    lease_s = min(timeout_s, _MAX_LEASE_S)
    record = Record(publisher, settings, lambda call: usage_subject(call.request.operation))
    accounts = Accounts(state.redis, settings.env, state.breakers, state.cooldowns, state.headroom)
    budget = BudgetGate(state.redis, settings)  # one for both pipelines
    semantic = SemanticCache(state.semantic_store, state.semantic_stats, lambda model: GatewayEmbedder(
        model, config, pool, state, accounts))
    idempotent = Idempotent(state.idempotency, lease_s)  # one for both pipelines
    chat = compose([
        record, Guard(_stateless(pool, timeout_s) if settings.state_fail_open else None),
        admit, budget, idempotent,
        KeyLimits(state.limiter, count_tokens=True), shaping, ExactCacheStage(state.cache, lease_s),
        SemanticCacheStage(semantic), Plan(state.combos, accounts),
        DispatchStage(pool, state, accounts, timeout_s)])
    operations = compose([
        record, Guard(None), admit, capable, budget, idempotent, KeyLimits(state.limiter, count_tokens=False),
        Plan(state.combos, accounts), DispatchStage(pool, state, accounts, timeout_s)])
    return Pipelines(chat=chat, operations=operations)


def _stateless(pool: ExecutorPool, timeout_s: float) -> Next:
    async def dispatch(call: Call, next: Next) -> Events:
        async for event in stateless.answer(pool, call.snapshot, call.request, call.requested, call.resolved,
                                            call.attempts, timeout_s):
            yield event
    return compose([admit, dispatch])
