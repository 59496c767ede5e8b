"""Calling executors for one request: step by step (the plan's order), account by account.

A failure before the answer starts falls back transparently (next account, then the step's
retries, then the next step); once the answer has started, a failure ends it with an error
event, which the edge turns into a clean error in the caller's format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from omniroute import targets
from omniroute.config.routing_spec import PolicySpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection
from omniroute.executor_pool import ExecutorPool
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.dispatch import account_call
from omniroute_router.dispatch.classify import falls_back
from omniroute_router.dispatch.executor_call import execute_request
from omniroute_router.selection.account_limits import connection_limits
from omniroute_router.selection.accounts import Accounts, Availability, Health
from omniroute_router.selection.learned import learn
from omniroute_router.selection.outcomes import penalise, reward
from omniroute_router.selection.plan import Step
from omniroute_router.selection.policy import provider_allowed
from omniroute_router.state import RouterState


@dataclass
class Dispatch:
    pool: ExecutorPool
    shared: RouterState
    accounts: Accounts
    snapshot: ConfigSnapshot
    key: ApiKey | None
    policies: list[PolicySpec]
    default_timeout_s: float
    start_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Attempts:
    """What a dispatch tells the request's record that the answer's events do not say."""

    failed: list[str] = field(default_factory=list)  # "provider/connection:status" of each fallback
    # The upstream's start when it then failed for good before any content (the error alone
    # answers the caller, but the record names who failed).
    failed_start: common_pb2.ResponseStart | None = None


@dataclass
class _Attempt:
    done: bool = False                  # the answer was given (or a final error): stop
    error: common_pb2.Error | None = None


async def dispatch(ctx: Dispatch, request: router_pb2.ChatRequest, steps: list[Step],
                   attempts: Attempts) -> AsyncIterator[common_pb2.AnswerEvent]:
    last_error: common_pb2.Error | None = None
    reasons: list[str] = []
    waits: list[float] = []
    for step in steps:
        target = step.target
        if not provider_allowed(ctx.policies, target):
            reasons.append(f"{target.name}: provider not allowed by policy")
            continue
        retries = step.combo.max_retries if step.combo else 0
        for attempt_no in range(retries + 1):
            if attempt_no and step.combo and step.combo.retry_delay_ms:
                await asyncio.sleep(step.combo.retry_delay_ms / 1000)
            availability = await ctx.accounts.available(target, ctx.key)
            if not availability.usable:
                reasons += [f"{target.name} [{name}]: {why}" for name, why in availability.reasons.items()]
                if availability.retry_after_s:
                    waits.append(availability.retry_after_s)
                break
            for connection in availability.usable:
                attempt = _Attempt()
                async for event in _try(ctx, request, step, connection, availability, attempts, attempt):
                    yield event
                if attempt.done:
                    return
                if attempt.error is not None:
                    last_error = attempt.error
                    attempts.failed.append(f"{target.provider.id}/{connection.name}:{attempt.error.status}")
            else:
                continue  # every account failed: retry the step (if retries are left)
            break
    if last_error is not None:
        yield common_pb2.AnswerEvent(error=last_error)
        return
    retry_after = min(waits) if waits else 0.0
    yield common_pb2.AnswerEvent(error=common_pb2.Error(
        status=503, type="server_error", code="no_available_account", retryable=True,
        retry_after_s=retry_after,
        message="No account can serve this request now: " + ("; ".join(reasons[:8]) or "none configured")))


async def _try(ctx: Dispatch, request: router_pb2.ChatRequest, step: Step, connection: Connection,
               availability: Availability, attempts: Attempts,
               attempt: _Attempt) -> AsyncIterator[common_pb2.AnswerEvent]:
    target = step.target
    resilience = ctx.snapshot.routing.resilience
    limits = connection_limits(connection)  # the account's own rpm / max concurrency
    member = f"{request.request_id}:{len(attempts.failed)}"
    if limits.any:  # headroom or skip
        admission = await ctx.shared.limiter.admit(f"conn:{connection.id}", limits, member)
        if not admission.allowed:
            if "concurrency" in admission.reasons:
                attempt.error = common_pb2.Error(
                    status=429, type="rate_limit_error", code="account_busy", retryable=True,
                    message=f"{target.provider.id} [{connection.name}]: at its maximum concurrency "
                            f"({limits.concurrency})")
            return
    timeout_s = (step.combo.timeout_s if step.combo and step.combo.timeout_s else None) \
        or ctx.default_timeout_s
    # Writes only where they change something (each is a Redis round trip on the hot path):
    # the half-open probe claim, and the least-recently-used order among several accounts.
    health = availability.health.get(connection.id)
    if health is None or health.needs_claim:
        breaker = await ctx.shared.breakers.try_pass(connection.id, probe_timeout_s=min(timeout_s, 60.0))
        if not breaker.usable:
            return  # opened (or its probe claimed) by another request since the selection
    if availability.shared:
        await ctx.accounts.touch(connection)
    call = execute_request(request, targets.build(ctx.snapshot, target.provider, connection, target.model,
                                                  timeout_s, targets.process_crypto()))
    # The upstream's start (its headers came) is held back until the answer's first content (a
    # chunk, or the whole response): until then nothing has reached the caller, so a failure
    # that comes after the headers (a first event that is not JSON, a stall, a cut or endless
    # body, a redirect) still falls back to the next target.
    held: common_pb2.AnswerEvent | None = None
    started = False  # content went to the caller: a failure now ends the answer
    async for event in account_call.call(ctx.shared, ctx.pool, connection, call, member, limits):
        kind = event.WhichOneof("kind")
        if kind in ("error", "start"):
            await learn(ctx.shared.headroom, connection, target.model,
                        event.error.headers if kind == "error" else event.start.headers)
        if kind == "error":
            failure = await penalise(ctx.shared, resilience, target, connection, event.error)
            if not started and event.error.retryable and falls_back(failure):
                attempt.error = event.error
                return
            attempt.done = True
            if held is not None:  # a final error before any content: the error alone answers
                attempts.failed_start = held.start
            yield event
            return
        if kind == "start":
            held = event
            continue
        if held is not None:
            started = True
            yield await _answered(ctx, step, connection, health, held)
            held = None
        yield event
    if held is not None:  # an answer without any content
        yield await _answered(ctx, step, connection, health, held)
    attempt.done = True


async def _answered(ctx: Dispatch, step: Step, connection: Connection, health: Health | None,
                    event: common_pb2.AnswerEvent) -> common_pb2.AnswerEvent:
    """The start of an answer that is going to the caller: name the combo, heal the connection
    and tell the combos."""
    target = step.target
    if step.path:
        event.start.combo = step.path[0][0]
    event.start.headers.update(ctx.start_headers)
    if health is None or not health.spotless:  # else a success has nothing to heal
        await reward(ctx.shared, ctx.snapshot.routing.resilience, target, connection)
    for combo, answered in step.path:
        await ctx.shared.combos.answered(combo, answered)
    return event
