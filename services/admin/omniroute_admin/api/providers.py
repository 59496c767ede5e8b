"""/api/providers and /api/keys: the same fields as the config file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from omniroute.config.spec import KeySpec, ProviderSpec
from omniroute.store import config_repo
from omniroute_admin import audit
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])


def _state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


@router.get("/api/providers")
async def list_providers(request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        return {"providers": await config_repo.list_providers(conn, state.crypto)}


@router.post("/api/providers", status_code=201)
async def create_provider(spec: ProviderSpec, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if await config_repo.list_providers(conn, provider_id=spec.id):
            raise HTTPException(409, f"A provider named {spec.id!r} exists; use PUT to change it.")
        await config_repo.upsert_provider(conn, spec, state.crypto)
        created = (await config_repo.list_providers(conn, state.crypto, spec.id))[0]
    await audit.record(state, request, "providers.create", spec.id, after=created)
    await state.announce("providers")
    return created


@router.get("/api/providers/{provider_id}")
async def get_provider(provider_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        found = await config_repo.list_providers(conn, state.crypto, provider_id)
    if not found:
        raise HTTPException(404, f"No provider named {provider_id!r}.")
    return found[0]


@router.put("/api/providers/{provider_id}")
async def update_provider(provider_id: str, spec: ProviderSpec, request: Request) -> dict[str, Any]:
    if spec.id != provider_id:
        raise HTTPException(400, "The id in the body must match the id in the path.")
    state = _state(request)
    async with state.pool.connection() as conn:
        before = await config_repo.list_providers(conn, state.crypto, provider_id)
        await config_repo.upsert_provider(conn, spec, state.crypto)
        updated = (await config_repo.list_providers(conn, state.crypto, provider_id))[0]
    await audit.record(state, request, "providers.update", provider_id, before=before or None, after=updated)
    await state.announce("providers")
    return updated


@router.delete("/api/providers/{provider_id}")
async def delete_provider(provider_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        before = await config_repo.list_providers(conn, state.crypto, provider_id)
        if not await config_repo.delete_provider(conn, provider_id):
            raise HTTPException(404, f"No provider named {provider_id!r}.")
    await audit.record(state, request, "providers.delete", provider_id, before=before)
    await state.announce("providers")
    return {"deleted": provider_id}


@router.get("/api/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        return {"keys": await config_repo.list_keys(conn)}


@router.post("/api/keys", status_code=201)
async def create_key(spec: KeySpec, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if any(k["name"] == spec.name for k in await config_repo.list_keys(conn)):
            raise HTTPException(409, f"A key named {spec.name!r} exists.")
        key_id, clear = await config_repo.create_key(conn, spec)
    await audit.record(state, request, "keys.create", key_id,
                       after=spec.model_dump(mode="json", exclude={"key"}))
    await state.announce("keys")
    # The only time the key is shown: only its hash is stored.
    return {"id": key_id, "name": spec.name, "key": clear}


@router.delete("/api/keys/{key_id}")
async def delete_key(key_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await config_repo.delete_key(conn, key_id):
            raise HTTPException(404, f"No key {key_id!r}.")
    await audit.record(state, request, "keys.delete", key_id)
    await state.announce("keys")
    return {"deleted": key_id}
