"""Routing and resilience management: aliases, combos, resilience profiles and breakers, rate
limits, availability, caches, policies, and the request-shaping settings. Config goes to Postgres
(then config.changed); live state (breakers, cooldowns, limits, caches) is read from Redis, where
the routers keep it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from omniroute.config.routing_spec import (
    ComboSpec,
    PolicySpec,
    RateLimitSettings,
    ResilienceSettings,
    SystemPromptSettings,
    ThinkingBudgetSettings,
)
from omniroute.config.snapshot import ConfigSnapshot, Provider, load_snapshot
from omniroute.limits.breaker import Breakers
from omniroute.limits.cache import ExactCache
from omniroute.limits.cooldown import Cooldowns
from omniroute.limits.idempotency import Idempotency
from omniroute.limits.ratelimit import Limits, RateLimiter
from omniroute.limits.semantic_stats import SemanticStats
from omniroute.store import config_repo
from omniroute_admin import audit
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])


def _state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


async def _snapshot(state: AdminState) -> ConfigSnapshot:
    # The control plane may read Postgres; credentials stay encrypted (crypto None).
    return await load_snapshot(state.settings.database_url, None)


async def _set(request: Request, key: str, value: BaseModel | list[Any] | str | None) -> None:
    """Store one routing setting, audited in the same transaction, and announce it."""
    state = _state(request)
    dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    async with state.pool.connection() as conn, conn.transaction():
        await config_repo.set_routing_setting(conn, key, dumped)
        await audit.record(state, request, f"routing.{key}", key, after=dumped, conn=conn)
    await state.announce(f"routing.{key}")


# --- aliases ---------------------------------------------------------------------------------

class AliasBody(BaseModel):
    alias: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$")
    model: str = Field(min_length=1)


@router.get("/api/models/alias")
async def list_aliases(request: Request) -> dict[str, Any]:
    async with _state(request).pool.connection() as conn:
        return {"aliases": await config_repo.list_aliases(conn)}


@router.post("/api/models/alias")
async def set_alias(body: AliasBody, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        await config_repo.upsert_alias(conn, body.alias, body.model)
        await audit.record(state, request, "aliases.set", body.alias, after=body.model_dump(), conn=conn)
    await state.announce("aliases")
    return {"alias": body.alias, "model": body.model}


@router.delete("/api/models/alias/{alias}")
async def delete_alias(alias: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await config_repo.delete_alias(conn, alias):
            raise HTTPException(404, f"No alias {alias!r}.")
        await audit.record(state, request, "aliases.delete", alias, conn=conn)
    await state.announce("aliases")
    return {"deleted": alias}


# --- combos ----------------------------------------------------------------------------------

@router.get("/api/combos")
async def list_combos(request: Request) -> dict[str, Any]:
    async with _state(request).pool.connection() as conn:
        return {"combos": [c.model_dump(mode="json") for c in await config_repo.list_combos(conn)]}


async def _combo(state: AdminState, name: str) -> ComboSpec | None:
    async with state.pool.connection() as conn:
        return next((c for c in await config_repo.list_combos(conn) if c.name == name), None)


@router.post("/api/combos", status_code=201)
async def create_combo(spec: ComboSpec, request: Request) -> dict[str, Any]:
    state = _state(request)
    if await _combo(state, spec.name) is not None:
        raise HTTPException(409, f"A combo named {spec.name!r} exists; use PUT to change it.")
    async with state.pool.connection() as conn:
        await config_repo.upsert_combo(conn, spec)
        await audit.record(state, request, "combos.create", spec.name, after=spec.model_dump(mode="json"),
                           conn=conn)
    await state.announce("combos")
    return spec.model_dump(mode="json")


@router.get("/api/combos/{name}")
async def get_combo(name: str, request: Request) -> dict[str, Any]:
    combo = await _combo(_state(request), name)
    if combo is None:
        raise HTTPException(404, f"No combo named {name!r}.")
    return combo.model_dump(mode="json")


@router.put("/api/combos/{name}")
async def update_combo(name: str, spec: ComboSpec, request: Request) -> dict[str, Any]:
    if spec.name != name:
        raise HTTPException(400, "The name in the body must match the name in the path.")
    state = _state(request)
    before = await _combo(state, name)
    async with state.pool.connection() as conn:
        await config_repo.upsert_combo(conn, spec)
        await audit.record(state, request, "combos.update", name, conn=conn, after=spec.model_dump(mode="json"),
                           before=before.model_dump(mode="json") if before else None)
    await state.announce("combos")
    return spec.model_dump(mode="json")


@router.delete("/api/combos/{name}")
async def delete_combo(name: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await config_repo.delete_combo(conn, name):
            raise HTTPException(404, f"No combo named {name!r}.")
        await audit.record(state, request, "combos.delete", name, conn=conn)
    await state.announce("combos")
    return {"deleted": name}


# --- resilience ------------------------------------------------------------------------------

@router.get("/api/resilience")
async def get_resilience(request: Request) -> dict[str, Any]:
    state = _state(request)
    snapshot = await _snapshot(state)
    ids = [c.id for p in snapshot.providers.values() for c in p.connections]
    breakers = await Breakers(state.redis, state.settings.env).view(ids)
    cooldowns = await Cooldowns(state.redis, state.settings.env).view(ids)
    return {"resilience": snapshot.routing.resilience.model_dump(mode="json"),
            "connections": {cid: {"breaker": breakers[cid].state, "failures": breakers[cid].failures,
                                  "openForS": breakers[cid].retry_after_s,
                                  "cooldownS": cooldowns[cid].remaining_s,
                                  "cooldownLevel": cooldowns[cid].level,
                                  "cooldownReason": cooldowns[cid].reason} for cid in ids}}


@router.put("/api/resilience")
async def put_resilience(body: ResilienceSettings, request: Request) -> dict[str, Any]:
    await _set(request, "resilience", body)
    return {"resilience": body.model_dump(mode="json")}


class ResetBody(BaseModel):
    connection: str | None = None  # "provider:name"; absent = every breaker and cooldown


@router.post("/api/resilience/reset")
async def reset_resilience(request: Request, body: ResetBody | None = None) -> dict[str, Any]:
    state = _state(request)
    breakers = Breakers(state.redis, state.settings.env)
    if body is not None and body.connection:
        answer: dict[str, Any] = {"reset": await breakers.reset(body.connection)}
    else:
        answer = {"reset": await breakers.reset(),
                  "cooldownsCleared": await Cooldowns(state.redis, state.settings.env).reset()}
    await audit.record(state, request, "resilience.reset", (body.connection if body else None) or "*",
                       detail=answer)
    return answer


# --- rate limits -----------------------------------------------------------------------------

@router.get("/api/rate-limits")
async def rate_limits(request: Request) -> dict[str, Any]:
    """Per key: configured limits and current use; per connection: fixed RPM, cooldown, breaker."""
    state = _state(request)
    snapshot = await _snapshot(state)
    limiter = RateLimiter(state.redis, state.settings.env)
    keys = {}
    for key in snapshot.keys_by_id.values():
        limits = Limits.of(key.limits or snapshot.routing.rate_limit.default_limits)
        used = await limiter.usage(f"key:{key.id}", limits)
        keys[key.name] = {"id": key.id, "limits": key.limits, "rpmUsed": used.rpm_used,
                          "tpmUsed": used.tpm_used, "concurrent": used.concurrency_used}
    ids = [c.id for p in snapshot.providers.values() for c in p.connections]
    cooldowns = await Cooldowns(state.redis, state.settings.env).view(ids)
    breakers = await Breakers(state.redis, state.settings.env).view(ids)
    connections = {}
    for provider in snapshot.providers.values():
        for c in provider.connections:
            rpm = c.settings.get("rpm") if isinstance(c.settings.get("rpm"), int) else 0
            used = await limiter.usage(f"conn:{c.id}", Limits(rpm=rpm or 0))
            connections[c.id] = {"rpm": rpm or None, "rpmUsed": used.rpm_used,
                                 "cooldownS": cooldowns[c.id].remaining_s,
                                 "breaker": breakers[c.id].state, "enabled": c.enabled}
    return {"keys": keys, "connections": connections}


@router.get("/api/rate-limit")
async def get_rate_limit(request: Request) -> dict[str, Any]:
    snapshot = await _snapshot(_state(request))
    return {"rateLimit": snapshot.routing.rate_limit.model_dump(mode="json"), "windowMs": 60_000}


@router.put("/api/rate-limit")
async def put_rate_limit(body: RateLimitSettings, request: Request) -> dict[str, Any]:
    await _set(request, "rate_limit", body)
    return {"rateLimit": body.model_dump(mode="json")}


# --- availability ----------------------------------------------------------------------------

class ModelBody(BaseModel):
    model: str = Field(min_length=1)


def _targets(snapshot: ConfigSnapshot, name: str, depth: int = 0) -> list[tuple[Provider, str]] | str:
    """(provider, model) pairs a name stands for, or why it stands for none."""
    if depth > 8:
        return "alias or combo cycle"
    if name in snapshot.aliases:
        return _targets(snapshot, snapshot.aliases[name], depth + 1)
    if name in snapshot.combos:
        found: list[tuple[Provider, str]] = []
        for step in snapshot.combos[name].models:
            sub = _targets(snapshot, step, depth + 1)
            found += sub if isinstance(sub, list) else []
        return found or "no step of the combo resolves"
    provider_id, _, model = name.partition("/")
    provider = snapshot.providers.get(provider_id)
    if provider is None or not model:
        # A bare model name (the seed's POST shape): every provider that lists it.
        listed = [(p, name) for p in snapshot.providers.values() if name in p.models]
        return listed or f"no provider serves {name!r}"
    if model == "*":
        return [(provider, m) for m in provider.models] or "the provider lists no models"
    return [(provider, model)]


async def _availability(state: AdminState, snapshot: ConfigSnapshot, name: str) -> dict[str, Any]:
    targets = _targets(snapshot, name)
    if isinstance(targets, str):
        return {"model": name, "available": False, "reasons": [targets]}
    env = state.settings.env
    cooldowns, breakers = Cooldowns(state.redis, env), Breakers(state.redis, env)
    reasons, usable = [], []
    for provider, model in targets:
        if not provider.enabled:
            reasons.append(f"{provider.id}: provider disabled")
            continue
        ids = [c.id for c in provider.connections if c.enabled]
        if not ids:
            reasons.append(f"{provider.id}: no enabled connection")
        views, states = await cooldowns.view(ids, model), await breakers.view(ids)
        locked = await cooldowns.locked_models(ids, model)
        for cid in ids:
            if cid in locked:
                reasons.append(f"{cid}: {model} not found there (locked)")
            elif views[cid].active:
                reasons.append(f"{cid}: cooling down {views[cid].remaining_s:.1f}s ({views[cid].reason})")
            elif states[cid].state == "OPEN":
                reasons.append(f"{cid}: circuit open for {states[cid].retry_after_s:.1f}s")
            else:
                usable.append(f"{provider.id}/{model} via {cid}")
    return {"model": name, "available": bool(usable), "via": usable, "reasons": reasons}


@router.get("/api/models/availability")
async def availability(request: Request) -> dict[str, Any]:
    state = _state(request)
    snapshot = await _snapshot(state)
    names = [f"{p.id}/{m}" for p in snapshot.providers.values() if p.enabled for m in p.models]
    names += sorted(snapshot.combos) + sorted(snapshot.aliases)
    return {"models": [await _availability(state, snapshot, name) for name in names]}


@router.post("/api/models/availability")
async def availability_of(body: ModelBody, request: Request) -> dict[str, Any]:
    state = _state(request)
    return await _availability(state, await _snapshot(state), body.model)


# --- caches ----------------------------------------------------------------------------------

@router.get("/api/cache")
async def cache_stats(request: Request) -> dict[str, Any]:
    state = _state(request)
    snapshot = await _snapshot(state)
    exact = await ExactCache(state.redis, state.settings.env).stats()
    semantic = await SemanticStats(state.redis, state.settings.env).stats()
    active = await Idempotency(state.redis, state.settings.env).active_keys()
    settings = snapshot.routing.cache
    # The seed's shape. The semantic cache has one tier (Qdrant, counted by the routers in Redis):
    # memorySize and dbSize both report its entries, memoryMaxSize its configured maximum.
    return {"semanticCache": {"memorySize": semantic["entries"],
                              "memoryMaxSize": settings.semantic_max_entries,
                              "dbSize": semantic["entries"], "hitRate": semantic["hitRate"],
                              "hits": semantic["hits"], "misses": semantic["misses"],
                              "enabled": settings.semantic_enabled, "keys": settings.semantic_keys,
                              "threshold": settings.semantic_threshold, "ttlS": settings.semantic_ttl_s,
                              "model": settings.semantic_model or "local-hashing"},
            "exactCache": {**exact, "ttlS": snapshot.routing.cache.ttl_s,
                           "mode": snapshot.routing.cache.mode},
            "idempotency": {"activeKeys": active,
                            "windowMs": snapshot.routing.idempotency.window_ms}}


@router.delete("/api/cache")
async def clear_cache(request: Request) -> dict[str, Any]:
    state = _state(request)
    semantic = await SemanticStats(state.redis, state.settings.env).clear()  # routers drop them lazily
    answer = {"cleared": await ExactCache(state.redis, state.settings.env).clear(), "semanticCleared": semantic}
    await audit.record(state, request, "cache.clear", "cache", detail=answer)
    return answer


# --- policies --------------------------------------------------------------------------------

@router.get("/api/policies")
async def list_policies(request: Request) -> dict[str, Any]:
    snapshot = await _snapshot(_state(request))
    return {"policies": [p.model_dump(mode="json") for p in snapshot.routing.policies]}


@router.post("/api/policies")
async def upsert_policy(body: PolicySpec, request: Request) -> dict[str, Any]:
    state = _state(request)
    policies = [p for p in (await _snapshot(state)).routing.policies if p.name != body.name]
    await _set(request, "policies", [p.model_dump(mode="json") for p in [*policies, body]])
    return body.model_dump(mode="json")


@router.delete("/api/policies/{name}")
async def delete_policy(name: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    policies = (await _snapshot(state)).routing.policies
    kept = [p.model_dump(mode="json") for p in policies if p.name != name]
    if len(kept) == len(policies):
        raise HTTPException(404, f"No policy named {name!r}.")
    await _set(request, "policies", kept)
    return {"deleted": name}


# --- request shaping and fallback --------------------------------------------------------------

@router.get("/api/settings/system-prompt")
async def get_system_prompt(request: Request) -> dict[str, Any]:
    return (await _snapshot(_state(request))).routing.system_prompt.model_dump(mode="json")


@router.put("/api/settings/system-prompt")
@router.post("/api/settings/system-prompt")
async def put_system_prompt(body: SystemPromptSettings, request: Request) -> dict[str, Any]:
    await _set(request, "system_prompt", body)
    return body.model_dump(mode="json")


@router.get("/api/settings/thinking-budget")
async def get_thinking_budget(request: Request) -> dict[str, Any]:
    return (await _snapshot(_state(request))).routing.thinking_budget.model_dump(mode="json")


@router.put("/api/settings/thinking-budget")
@router.post("/api/settings/thinking-budget")
async def put_thinking_budget(body: ThinkingBudgetSettings, request: Request) -> dict[str, Any]:
    await _set(request, "thinking_budget", body)
    return body.model_dump(mode="json")


class FallbackBody(BaseModel):
    model: str | None = None


@router.get("/api/routing/fallback-model")
async def get_fallback(request: Request) -> dict[str, Any]:
    return {"model": (await _snapshot(_state(request))).routing.fallback_model}


@router.put("/api/routing/fallback-model")
async def put_fallback(body: FallbackBody, request: Request) -> dict[str, Any]:
    await _set(request, "fallback_model", body.model)
    return {"model": body.model}
