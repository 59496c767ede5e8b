"""The key limits stage: per-key and per-team rpm, tpm and concurrency, one atomic Redis admission
per request over both scopes (the key's `key:<id>` and its team's `team:<id>`, which every key of
the team shares across replicas), the same answer whichever replica asks. A request must pass
both; over either → 429 naming the limit that refused, with Retry-After and x-ratelimit-*; a
refusal by one scope leaves nothing counted in the other (the script counts all or none). The
request holds its concurrency slots until its answer ends; the answer's tokens count towards both
scopes' tpm afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as redis

from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Team
from omniroute.shared_state.ratelimit import Admission, Limits, RateLimiter
from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.call import Call, Events, Next, error_event


def key_limits(snapshot: ConfigSnapshot, key: ApiKey | None) -> Limits:
    if key is None:
        return Limits()
    return Limits.of(key.limits or snapshot.routing.rate_limit.default_limits)


def team_of(snapshot: ConfigSnapshot, key: ApiKey | None) -> Team | None:
    return snapshot.teams.get(key.team_id) if key is not None else None


def scope(key: ApiKey) -> str:
    return f"key:{key.id}"


def team_scope(team: Team) -> str:
    return f"team:{team.id}"


@dataclass(frozen=True, slots=True)
class Scope:
    """One set of limits a request must pass: `label` names it in a refusal."""

    name: str
    label: str
    limits: Limits


def scopes_of(snapshot: ConfigSnapshot, key: ApiKey | None) -> list[Scope]:
    """The scopes with any limit, the key's first (a key's own limits narrow its team's: both
    apply, so the tighter one decides)."""
    if key is None:
        return []
    found = [Scope(scope(key), "this API key", key_limits(snapshot, key))]
    team = team_of(snapshot, key)
    if team is not None:
        found.append(Scope(team_scope(team), f"the team {team.id!r} of this API key", Limits.of(team.limits)))
    return [s for s in found if s.limits.any]


def combined_headers(admissions: list[Admission]) -> dict[str, str]:
    """x-ratelimit-* of the scope with the least left, per kind (requests, tokens), and the
    smaller concurrency limit."""
    headers: dict[str, str] = {}
    for admission in admissions:
        own = admission.headers()
        for kind in ("requests", "tokens"):
            remaining, limit = f"x-ratelimit-remaining-{kind}", f"x-ratelimit-limit-{kind}"
            if remaining in own and (remaining not in headers or int(own[remaining]) < int(headers[remaining])):
                headers[remaining], headers[limit] = own[remaining], own[limit]
        concurrency = own.get("x-ratelimit-limit-concurrency")
        if concurrency is not None:
            current = headers.get("x-ratelimit-limit-concurrency", concurrency)
            headers["x-ratelimit-limit-concurrency"] = min(concurrency, current, key=int)
    return headers


@contextlib.asynccontextmanager
async def admitted(limiter: RateLimiter, snapshot: ConfigSnapshot, key: ApiKey | None,
                   request_id: str) -> AsyncIterator[list[Admission] | None]:
    """Inside: the request holds its slots (renewed for long streams, released at the end)."""
    scopes = scopes_of(snapshot, key)
    if not scopes:
        yield None
        return
    admissions = await limiter.admit_all([(s.name, s.limits) for s in scopes], request_id)
    for found, admission in zip(scopes, admissions, strict=True):
        if not admission.allowed:
            raise RoutingError(429, f"Rate limit reached for {found.label} ({', '.join(admission.reasons)}); "
                                    f"retry in {admission.retry_after_s:.1f}s.",
                               code="rate_limit_exceeded", type_="rate_limit_error",
                               headers=admission.headers(), retry_after_s=admission.retry_after_s)
    async with contextlib.AsyncExitStack() as stack:
        for found in scopes:
            if found.limits.concurrency:
                await stack.enter_async_context(limiter.held(found.name, request_id))
        yield admissions


class KeyLimits:
    """`count_tokens`: add the answer's tokens to the key's and team's tpm (chat; operations do not)."""

    def __init__(self, limiter: RateLimiter, *, count_tokens: bool) -> None:
        self._limiter = limiter
        self._count_tokens = count_tokens

    async def __call__(self, call: Call, next: Next) -> Events:
        snapshot, key = call.snapshot, call.key
        tokens = 0
        try:
            async with admitted(self._limiter, snapshot, key, call.request.request_id) as admissions:
                if admissions:
                    call.headers.update(combined_headers(admissions))
                async for event in next(call):
                    if event.WhichOneof("kind") == "usage":
                        tokens = event.usage.input_tokens + event.usage.output_tokens
                    yield event
        except RoutingError as exc:
            yield error_event(exc.to_proto())
        finally:
            if self._count_tokens and tokens:
                for found in scopes_of(snapshot, key):
                    if found.limits.tpm:
                        with contextlib.suppress(redis.RedisError):
                            await self._limiter.add_tokens(found.name, tokens)
