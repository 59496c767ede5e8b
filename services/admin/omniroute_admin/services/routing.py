"""Routing and resilience: aliases, combos, resilience profiles and breakers, rate limits,
availability, caches, policies and the request-shaping settings. Config goes to Postgres (then
config.changed); live state (breakers, cooldowns, limits, caches) is read from Redis, where the
routers keep it."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

from omniroute.config.routing_spec import ComboSpec, PolicySpec
from omniroute.config.snapshot import ConfigSnapshot, Provider, load_snapshot
from omniroute.shared_state import health_keys
from omniroute.shared_state.breaker import Breakers
from omniroute.shared_state.cache import ExactCache
from omniroute.shared_state.cooldown import Cooldowns
from omniroute.shared_state.idempotency import Idempotency
from omniroute.shared_state.ratelimit import Limits, RateLimiter
from omniroute.shared_state.semantic_stats import SemanticStats
from omniroute.store import config_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState


async def snapshot(state: AdminState) -> ConfigSnapshot:
    # The control plane may read Postgres; credentials stay encrypted (crypto None).
    return await load_snapshot(state.settings.database_url, None)


async def set_setting(state: AdminState, caller: Caller, key: str,
                      value: BaseModel | list[Any] | str | None) -> None:
    """Store one routing setting, audited in the same transaction, and announce it."""
    dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    async with state.pool.connection() as conn, conn.transaction():
        await config_repo.set_routing_setting(conn, key, dumped)
        await audit.record(state, caller, f"routing.{key}", key, after=dumped, conn=conn)
    await state.announce(f"routing.{key}")


# --- aliases ---------------------------------------------------------------------------------

async def list_aliases(state: AdminState) -> dict[str, str]:
    async with state.pool.connection() as conn:
        return await config_repo.list_aliases(conn)


async def set_alias(state: AdminState, caller: Caller, alias: str, model: str) -> None:
    async with state.pool.connection() as conn:
        await config_repo.upsert_alias(conn, alias, model)
        await audit.record(state, caller, "aliases.set", alias, after={"alias": alias, "model": model},
                           conn=conn)
    await state.announce("aliases")


async def delete_alias(state: AdminState, caller: Caller, alias: str) -> None:
    await audit.deleted(state, caller, lambda conn: config_repo.delete_alias(conn, alias),
                        action="aliases.delete", target=alias, missing=f"No alias {alias!r}.", announce="aliases")


# --- combos ----------------------------------------------------------------------------------

async def list_combos(state: AdminState) -> list[ComboSpec]:
    async with state.pool.connection() as conn:
        return await config_repo.list_combos(conn)


async def find_combo(state: AdminState, name: str) -> ComboSpec | None:
    return next((c for c in await list_combos(state) if c.name == name), None)


async def get_combo(state: AdminState, name: str) -> ComboSpec:
    combo = await find_combo(state, name)
    if combo is None:
        raise HTTPException(404, f"No combo named {name!r}.")
    return combo


async def create_combo(state: AdminState, caller: Caller, spec: ComboSpec) -> None:
    if await find_combo(state, spec.name) is not None:
        raise HTTPException(409, f"A combo named {spec.name!r} exists; use PUT to change it.")
    await _save_combo(state, caller, spec, "combos.create", before=None)


async def update_combo(state: AdminState, caller: Caller, name: str, spec: ComboSpec) -> None:
    if spec.name != name:
        raise HTTPException(400, "The name in the body must match the name in the path.")
    before = await find_combo(state, name)
    await _save_combo(state, caller, spec, "combos.update",
                      before=before.model_dump(mode="json") if before else None)


async def _save_combo(state: AdminState, caller: Caller, spec: ComboSpec, action: str,
                      before: dict[str, Any] | None) -> None:
    async with state.pool.connection() as conn:
        await config_repo.upsert_combo(conn, spec)
        await audit.record(state, caller, action, spec.name, conn=conn, before=before,
                           after=spec.model_dump(mode="json"))
    await state.announce("combos")


async def delete_combo(state: AdminState, caller: Caller, name: str) -> None:
    await audit.deleted(state, caller, lambda conn: config_repo.delete_combo(conn, name),
                        action="combos.delete", target=name, missing=f"No combo named {name!r}.", announce="combos")


# --- resilience and rate limits ----------------------------------------------------------------

async def resilience(state: AdminState) -> dict[str, Any]:
    """The resilience profile, and per connection its breaker and cooldown as routers keep them."""
    current = await snapshot(state)
    ids = [c.id for p in current.providers.values() for c in p.connections]
    breakers = await Breakers(state.redis, state.settings.env).view(ids)
    cooldowns = await Cooldowns(state.redis, state.settings.env).view(ids)
    return {"resilience": current.routing.resilience.model_dump(mode="json"),
            "connections": {cid: {"breaker": breakers[cid].state, "failures": breakers[cid].failures,
                                  "openForS": breakers[cid].retry_after_s,
                                  "cooldownS": cooldowns[cid].remaining_s,
                                  "cooldownLevel": cooldowns[cid].level,
                                  "cooldownReason": cooldowns[cid].reason} for cid in ids}}


async def reset_resilience(state: AdminState, caller: Caller, connection: str | None) -> dict[str, Any]:
    """One connection's ("provider:name") breaker, cooldowns and model locks, or every one's.
    `cooldownsCleared` counts the model locks too."""
    if connection:
        cleared = await health_keys.forget(state.redis, state.settings.env, [connection])
        answer: dict[str, Any] = {"reset": cleared["breakers"],
                                  "cooldownsCleared": cleared["cooldowns"] + cleared["modelLocks"]}
    else:
        answer = {"reset": await Breakers(state.redis, state.settings.env).reset(),
                  "cooldownsCleared": await Cooldowns(state.redis, state.settings.env).reset()}
    await audit.record(state, caller, "resilience.reset", connection or "*", detail=answer)
    return answer


async def rate_limits(state: AdminState) -> dict[str, Any]:
    """Per key: configured limits and current use; per connection: fixed RPM, cooldown, breaker."""
    current = await snapshot(state)
    limiter = RateLimiter(state.redis, state.settings.env)
    keys = {}
    for key in current.keys_by_id.values():
        limits = Limits.of(key.limits or current.routing.rate_limit.default_limits)
        used = await limiter.usage(f"key:{key.id}", limits)
        keys[key.name] = {"id": key.id, "limits": key.limits, "rpmUsed": used.rpm_used,
                          "tpmUsed": used.tpm_used, "concurrent": used.concurrency_used}
    ids = [c.id for p in current.providers.values() for c in p.connections]
    cooldowns = await Cooldowns(state.redis, state.settings.env).view(ids)
    breakers = await Breakers(state.redis, state.settings.env).view(ids)
    connections = {}
    for provider in current.providers.values():
        for c in provider.connections:
            rpm = c.settings.get("rpm") if isinstance(c.settings.get("rpm"), int) else 0
            used = await limiter.usage(f"conn:{c.id}", Limits(rpm=rpm or 0))
            connections[c.id] = {"rpm": rpm or None, "rpmUsed": used.rpm_used,
                                 "cooldownS": cooldowns[c.id].remaining_s,
                                 "breaker": breakers[c.id].state, "enabled": c.enabled}
    return {"keys": keys, "connections": connections}


# --- availability ----------------------------------------------------------------------------

def _targets(current: ConfigSnapshot, name: str, depth: int = 0) -> list[tuple[Provider, str]] | str:
    """(provider, model) pairs a name stands for, or why it stands for none."""
    if depth > 8:
        return "alias or combo cycle"
    if name in current.aliases:
        return _targets(current, current.aliases[name], depth + 1)
    if name in current.combos:
        found: list[tuple[Provider, str]] = []
        for step in current.combos[name].models:
            sub = _targets(current, step, depth + 1)
            found += sub if isinstance(sub, list) else []
        return found or "no step of the combo resolves"
    provider_id, _, model = name.partition("/")
    provider = current.providers.get(provider_id)
    if provider is None or not model:
        # A bare model name (the seed's POST shape): every provider that lists it.
        listed = [(p, name) for p in current.providers.values() if name in p.models]
        return listed or f"no provider serves {name!r}"
    if model == "*":
        return [(provider, m) for m in provider.models] or "the provider lists no models"
    return [(provider, model)]


async def availability_of(state: AdminState, current: ConfigSnapshot, name: str) -> dict[str, Any]:
    targets = _targets(current, name)
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


async def availability(state: AdminState) -> list[dict[str, Any]]:
    """Every enabled provider's models, every combo and every alias."""
    current = await snapshot(state)
    names = [f"{p.id}/{m}" for p in current.providers.values() if p.enabled for m in p.models]
    names += sorted(current.combos) + sorted(current.aliases)
    return [await availability_of(state, current, name) for name in names]


# --- caches ----------------------------------------------------------------------------------

async def cache_stats(state: AdminState) -> dict[str, Any]:
    current = await snapshot(state)
    exact = await ExactCache(state.redis, state.settings.env).stats()
    semantic = await SemanticStats(state.redis, state.settings.env).stats()
    active = await Idempotency(state.redis, state.settings.env).active_keys()
    settings = current.routing.cache
    # The seed's shape. The semantic cache has one tier (Qdrant, counted by the routers in Redis):
    # memorySize and dbSize both report its entries, memoryMaxSize its configured maximum.
    return {"semanticCache": {"memorySize": semantic["entries"],
                              "memoryMaxSize": settings.semantic_max_entries,
                              "dbSize": semantic["entries"], "hitRate": semantic["hitRate"],
                              "hits": semantic["hits"], "misses": semantic["misses"],
                              "enabled": settings.semantic_enabled, "keys": settings.semantic_keys,
                              "threshold": settings.semantic_threshold, "ttlS": settings.semantic_ttl_s,
                              "model": settings.semantic_model or "local-hashing"},
            "exactCache": {**exact, "ttlS": current.routing.cache.ttl_s,
                           "mode": current.routing.cache.mode},
            "idempotency": {"activeKeys": active,
                            "windowMs": current.routing.idempotency.window_ms}}


async def clear_cache(state: AdminState, caller: Caller) -> dict[str, Any]:
    semantic = await SemanticStats(state.redis, state.settings.env).clear()  # routers drop them lazily
    answer = {"cleared": await ExactCache(state.redis, state.settings.env).clear(), "semanticCleared": semantic}
    await audit.record(state, caller, "cache.clear", "cache", detail=answer)
    return answer


# --- policies --------------------------------------------------------------------------------

async def upsert_policy(state: AdminState, caller: Caller, policy: PolicySpec) -> None:
    policies = [p for p in (await snapshot(state)).routing.policies if p.name != policy.name]
    await set_setting(state, caller, "policies", [p.model_dump(mode="json") for p in [*policies, policy]])


async def delete_policy(state: AdminState, caller: Caller, name: str) -> None:
    policies = (await snapshot(state)).routing.policies
    kept = [p.model_dump(mode="json") for p in policies if p.name != name]
    if len(kept) == len(policies):
        raise HTTPException(404, f"No policy named {name!r}.")
    await set_setting(state, caller, "policies", kept)
