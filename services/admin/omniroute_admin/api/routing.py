"""Routing and resilience management over HTTP (the use cases: services/routing.py): aliases,
combos, resilience profiles and breakers, rate limits, availability, caches, policies, and the
request-shaping settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from omniroute.config.routing_spec import (
    ComboSpec,
    PolicySpec,
    RateLimitSettings,
    ResilienceSettings,
    SystemPromptSettings,
    ThinkingBudgetSettings,
)
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import routing
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)])


class AliasBody(BaseModel):
    alias: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$")
    model: str = Field(min_length=1)


class ResetBody(BaseModel):
    connection: str | None = None  # "provider:name"; absent = every breaker and cooldown


class ModelBody(BaseModel):
    model: str = Field(min_length=1)


class PolicyNameBody(BaseModel):
    name: str = Field(min_length=1)


class FallbackBody(BaseModel):
    model: str | None = None


# --- aliases and combos ------------------------------------------------------------------------

@router.get("/api/models/alias")
async def list_aliases(state: StateDep) -> dict[str, Any]:
    return {"aliases": await routing.list_aliases(state)}


@router.post("/api/models/alias")
async def set_alias(body: AliasBody, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.set_alias(state, caller, body.alias, body.model)
    return {"alias": body.alias, "model": body.model}


@router.delete("/api/models/alias/{alias}")
async def delete_alias(alias: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.delete_alias(state, caller, alias)
    return {"deleted": alias}


@router.get("/api/combos")
async def list_combos(state: StateDep) -> dict[str, Any]:
    return {"combos": [c.model_dump(mode="json") for c in await routing.list_combos(state)]}


@router.post("/api/combos", status_code=201)
async def create_combo(spec: ComboSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.create_combo(state, caller, spec)
    return spec.model_dump(mode="json")


@router.get("/api/combos/{name}")
async def get_combo(name: str, state: StateDep) -> dict[str, Any]:
    return (await routing.get_combo(state, name)).model_dump(mode="json")


@router.put("/api/combos/{name}")
async def update_combo(name: str, spec: ComboSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.update_combo(state, caller, name, spec)
    return spec.model_dump(mode="json")


@router.delete("/api/combos/{name}")
async def delete_combo(name: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.delete_combo(state, caller, name)
    return {"deleted": name}


# --- resilience, rate limits, availability ---------------------------------------------------

@router.get("/api/resilience")
async def get_resilience(state: StateDep) -> dict[str, Any]:
    return await routing.resilience(state)


@router.put("/api/resilience")
async def put_resilience(body: ResilienceSettings, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.set_setting(state, caller, "resilience", body)
    return {"resilience": body.model_dump(mode="json")}


@router.post("/api/resilience/reset")
async def reset_resilience(state: StateDep, caller: CallerDep, body: ResetBody | None = None) -> dict[str, Any]:
    return await routing.reset_resilience(state, caller, body.connection if body else None)


@router.get("/api/rate-limits")
async def rate_limits(state: StateDep) -> dict[str, Any]:
    """Per key: configured limits and current use; per connection: fixed RPM, cooldown, breaker."""
    return await routing.rate_limits(state)


@router.get("/api/rate-limit")
async def get_rate_limit(state: StateDep) -> dict[str, Any]:
    current = await routing.snapshot(state)
    return {"rateLimit": current.routing.rate_limit.model_dump(mode="json"), "windowMs": 60_000}


@router.put("/api/rate-limit")
async def put_rate_limit(body: RateLimitSettings, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.set_setting(state, caller, "rate_limit", body)
    return {"rateLimit": body.model_dump(mode="json")}


@router.get("/api/models/availability")
async def availability(state: StateDep) -> dict[str, Any]:
    return {"models": await routing.availability(state)}


@router.post("/api/models/availability")
async def availability_of(body: ModelBody, state: StateDep) -> dict[str, Any]:
    return await routing.availability_of(state, await routing.snapshot(state), body.model)


# --- caches and policies -----------------------------------------------------------------------

@router.get("/api/cache")
async def cache_stats(state: StateDep) -> dict[str, Any]:
    return await routing.cache_stats(state)


@router.delete("/api/cache")
async def clear_cache(state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await routing.clear_cache(state, caller)


@router.get("/api/policies")
async def list_policies(state: StateDep) -> dict[str, Any]:
    current = await routing.snapshot(state)
    return {"policies": [p.model_dump(mode="json") for p in current.routing.policies]}


@router.post("/api/policies")
async def upsert_policy(body: PolicySpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.upsert_policy(state, caller, body)
    return body.model_dump(mode="json")


@router.delete("/api/policies/{name}")
async def delete_policy(name: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.delete_policy(state, caller, name)
    return {"deleted": name}


@router.delete("/api/policies")
async def delete_named_policy(state: StateDep, caller: CallerDep, name: str | None = None,
                              body: PolicyNameBody | None = None) -> dict[str, Any]:
    """The same, with the name in `?name=` or the body `{"name": …}` (as scripts send it)."""
    chosen = name or (body.name if body else None)
    if not chosen:
        raise HTTPException(400, "Name the policy to delete: ?name=… or {\"name\": …}.")
    await routing.delete_policy(state, caller, chosen)
    return {"deleted": chosen}


# --- request shaping and fallback --------------------------------------------------------------

@router.get("/api/settings/system-prompt")
async def get_system_prompt(state: StateDep) -> dict[str, Any]:
    return (await routing.snapshot(state)).routing.system_prompt.model_dump(mode="json")


@router.put("/api/settings/system-prompt")
@router.post("/api/settings/system-prompt")
async def put_system_prompt(body: SystemPromptSettings, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.set_setting(state, caller, "system_prompt", body)
    return body.model_dump(mode="json")


@router.get("/api/settings/thinking-budget")
async def get_thinking_budget(state: StateDep) -> dict[str, Any]:
    return (await routing.snapshot(state)).routing.thinking_budget.model_dump(mode="json")


@router.put("/api/settings/thinking-budget")
@router.post("/api/settings/thinking-budget")
async def put_thinking_budget(body: ThinkingBudgetSettings, state: StateDep,
                              caller: CallerDep) -> dict[str, Any]:
    await routing.set_setting(state, caller, "thinking_budget", body)
    return body.model_dump(mode="json")


@router.get("/api/routing/fallback-model")
async def get_fallback(state: StateDep) -> dict[str, Any]:
    return {"model": (await routing.snapshot(state)).routing.fallback_model}


@router.put("/api/routing/fallback-model")
async def put_fallback(body: FallbackBody, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await routing.set_setting(state, caller, "fallback_model", body.model)
    return {"model": body.model}
