"""Providers (with their connections): the same fields as the config file (keys: services/keys.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

from omniroute.config.spec import ConnectionSpec, ProviderSpec
from omniroute.store import config_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import connection_health
from omniroute_admin.state import AdminState


async def list_providers(state: AdminState) -> list[dict[str, Any]]:
    """Every provider with its connections; credentials masked."""
    async with state.pool.connection() as conn:
        return await config_repo.list_providers(conn, state.crypto)


async def get_provider(state: AdminState, provider_id: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        found = await config_repo.list_providers(conn, state.crypto, provider_id)
    if not found:
        raise HTTPException(404, f"No provider named {provider_id!r}.")
    return found[0]


async def create_provider(state: AdminState, caller: Caller, spec: ProviderSpec) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        if await config_repo.list_providers(conn, provider_id=spec.id):
            raise HTTPException(409, f"A provider named {spec.id!r} exists; use PUT to change it.")
        await config_repo.upsert_provider(conn, spec, state.crypto)
        created = (await config_repo.list_providers(conn, state.crypto, spec.id))[0]
    await audit.record(state, caller, "providers.create", spec.id, after=created)
    await state.announce("providers")
    return created


async def update_provider(state: AdminState, caller: Caller, provider_id: str,
                          spec: ProviderSpec) -> dict[str, Any]:
    if spec.id != provider_id:
        raise HTTPException(400, "The id in the body must match the id in the path.")
    async with state.pool.connection() as conn:
        before = await config_repo.list_providers(conn, state.crypto, provider_id)
        await config_repo.upsert_provider(conn, spec, state.crypto)
        updated = (await config_repo.list_providers(conn, state.crypto, provider_id))[0]
    await audit.record(state, caller, "providers.update", provider_id, before=before or None, after=updated)
    await state.announce("providers")
    if before:
        await connection_health.forget(state, connection_health.reconfigured(before[0], spec))
    return updated


def spec_of(provider: dict[str, Any]) -> ProviderSpec:
    """A stored provider as a spec; credentials left out, so an update keeps them."""
    return ProviderSpec(id=provider["id"], type=provider["type"], base_url=provider["base_url"],
                        models=provider["models"] or [], enabled=provider["enabled"],
                        settings=provider["settings"] or {},
                        connections=[ConnectionSpec(name=c["name"], priority=c["priority"],
                                                    enabled=c["enabled"], settings=c["settings"] or {})
                                     for c in provider["connections"]])


async def change_provider(state: AdminState, caller: Caller, provider_id: str,
                          change: Callable[[ProviderSpec], str]) -> str:
    """Apply `change` to the stored provider (credentials kept) and save it; returns what
    `change` says it did."""
    spec = spec_of(await get_provider(state, provider_id))
    done = change(spec)
    await update_provider(state, caller, provider_id, spec)
    return done


async def delete_provider(state: AdminState, caller: Caller, provider_id: str) -> None:
    async with state.pool.connection() as conn:
        before = await config_repo.list_providers(conn, state.crypto, provider_id)
        if not await config_repo.delete_provider(conn, provider_id):
            raise HTTPException(404, f"No provider named {provider_id!r}.")
    await audit.record(state, caller, "providers.delete", provider_id, before=before)
    await state.announce("providers")
    # A provider created again under this id starts healthy.
    await connection_health.forget(state, [f"{provider_id}:{c['name']}" for p in before for c in p["connections"]])
