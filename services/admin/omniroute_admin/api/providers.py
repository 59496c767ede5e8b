"""/api/providers: the same fields as the config file (keys: api/keys.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from omniroute.config.spec import ProviderSpec
from omniroute.model_lists import ModelLists
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import providers
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)])


@router.get("/api/providers")
async def list_providers(state: StateDep) -> dict[str, Any]:
    return {"providers": await providers.list_providers(state)}


@router.post("/api/providers", status_code=201)
async def create_provider(spec: ProviderSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await providers.create_provider(state, caller, spec)


@router.get("/api/providers/{provider_id}")
async def get_provider(provider_id: str, state: StateDep) -> dict[str, Any]:
    """The provider, and its model list as the routers see it (modelList: source, count, when it
    was read, and why the last read failed: the last good list stays in use)."""
    found = await providers.get_provider(state, provider_id)
    listed = await ModelLists(state.redis, state.settings.env).read(provider_id)
    return {**found, "modelList": listed.as_json() if listed else None}


@router.put("/api/providers/{provider_id}")
async def update_provider(provider_id: str, spec: ProviderSpec, state: StateDep,
                          caller: CallerDep) -> dict[str, Any]:
    return await providers.update_provider(state, caller, provider_id, spec)


@router.delete("/api/providers/{provider_id}")
async def delete_provider(provider_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await providers.delete_provider(state, caller, provider_id)
    return {"deleted": provider_id}
