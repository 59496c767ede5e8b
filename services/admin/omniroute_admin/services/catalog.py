"""The provider catalog and provider checks: every model by provider and kind, custom models and
custom provider nodes, a provider's live model list (cached), a real minimal test call, and the
validation of a provider configuration before it is saved. Calls to providers go through an
executor (features/provider_calls.py), with the provider's outbound proxy."""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from omniroute import model_lists
from omniroute.catalog import PROVIDER_TYPES, provider_type
from omniroute.config.spec import ProviderSpec
from omniroute.model_lists import ModelList, ModelLists
from omniroute.store import admin_settings_repo, catalog_repo, config_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import provider_calls
from omniroute_admin.state import AdminState

KINDS = model_lists.KINDS


def _type_view(name: str) -> dict[str, Any]:
    kind = PROVIDER_TYPES[name]
    return {"type": name, "family": kind.family, "baseUrl": kind.base_url, "auth": kind.auth,
            "prefix": kind.prefix, "capabilities": list(kind.capabilities), "listModels": kind.list_models,
            "models": {k: list(v) for k, v in kind.models.items()}, "login": _login(name, kind.oauth)}


def _login(name: str, preset: dict[str, Any]) -> dict[str, str] | None:
    """How a dashboard "Connect" button signs a subscription type in (its OAuth preset's flow and
    the /api/oauth calls that run it; the provider of the type is created by the start call)."""
    base = f"/api/oauth/{name}"
    if preset.get("flow") == "pkce":
        # The user opens authUrl, then hands back the code ("code#state" or the redirect's code).
        return {"flow": "pkce", "start": f"{base}/start", "finish": f"{base}/callback"}
    if preset.get("flow") == "device":
        # The user enters userCode at verificationUri; the dashboard polls until connected.
        return {"flow": "device", "start": f"{base}/device/start", "finish": f"{base}/device/poll"}
    return None


async def catalog(state: AdminState) -> dict[str, Any]:
    """Every model by provider and kind, and the provider types."""
    async with state.pool.connection() as conn:
        providers = await config_repo.list_providers(conn)
        custom = await catalog_repo.custom_models(conn)
    extra: dict[str, list[tuple[str, str]]] = {}
    for provider_id, model, model_kind in custom:
        extra.setdefault(provider_id, []).append((model, model_kind))
    listed = []
    for p in providers:
        kind = provider_type(p["type"])
        by_kind: dict[str, list[str]] = {k: [] for k in KINDS}
        by_kind["chat"] += list(p.get("models") or [])
        for k in ("embedding", "image", "audio"):
            declared = (p.get("settings") or {}).get(f"{k}_models") or []
            by_kind[k] += [m for m in declared if isinstance(m, str)]
        for model, k in extra.get(p["id"], []):
            by_kind[k].append(model)
        listed.append({"id": p["id"], "type": p["type"], "enabled": p["enabled"],
                       "prefix": kind.prefix if kind else "",
                       "capabilities": list(kind.capabilities) if kind else [],
                       "models": {k: sorted(set(v)) for k, v in by_kind.items() if v}})
    return {"providers": listed, "types": [_type_view(n) for n in sorted(PROVIDER_TYPES)]}


# --- custom models and provider nodes ----------------------------------------------------------

async def custom_models(state: AdminState, provider: str | None) -> list[dict[str, str]]:
    async with state.pool.connection() as conn:
        rows = await catalog_repo.custom_models(conn, provider)
    return [{"provider": r[0], "model": r[1], "kind": r[2]} for r in rows]


async def add_custom_model(state: AdminState, caller: Caller, provider: str, model: str, kind: str) -> None:
    async with state.pool.connection() as conn:
        if not await config_repo.list_providers(conn, provider_id=provider):
            raise HTTPException(404, f"No provider named {provider!r}.")
        await catalog_repo.add_custom_model(conn, provider, model, kind)
        await audit.record(state, caller, "provider_models.add", f"{provider}/{model}",
                           after={"provider": provider, "model": model, "kind": kind}, conn=conn)
    await state.announce("providers")


async def delete_custom_model(state: AdminState, caller: Caller, provider: str, model: str,
                              kind: str | None) -> None:
    await audit.deleted(state, caller, lambda conn: catalog_repo.delete_custom_model(conn, provider, model, kind),
                        action="provider_models.delete", target=f"{provider}/{model}",
                        missing=f"No custom model {provider}/{model}.", announce="providers")


async def list_nodes(state: AdminState) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        return await catalog_repo.list_nodes(conn)


async def add_node(state: AdminState, caller: Caller, node: dict[str, Any]) -> None:
    async with state.pool.connection() as conn:
        if not await catalog_repo.add_node(conn, {**node, "base_url": node["base_url"].rstrip("/")}):
            raise HTTPException(409, f"A provider node named {node['id']!r} exists.")
        await audit.record(state, caller, "provider_nodes.create", node["id"], after=node, conn=conn)


async def delete_node(state: AdminState, caller: Caller, node_id: str) -> None:
    await audit.deleted(state, caller, lambda conn: catalog_repo.delete_node(conn, node_id),
                        action="provider_nodes.delete", target=node_id, missing=f"No provider node {node_id!r}.")


# --- calls to the provider ---------------------------------------------------------------------

async def _stored(state: AdminState, provider_id: str, connection: str | None
                  ) -> tuple[dict[str, Any], dict[str, Any] | None, str, dict[str, Any]]:
    """The provider, the connection to call with, its clear credential, the stored proxies."""
    async with state.pool.connection() as conn:
        # With crypto: the masked credential, part of the list's fingerprint (model_lists).
        found = await config_repo.list_providers(conn, state.crypto, provider_id)
        if not found:
            raise HTTPException(404, f"No provider named {provider_id!r}.")
        row, key = await provider_calls.stored_key(conn, state.crypto, provider_id, connection)
        proxies = await admin_settings_repo.load(conn, "proxy")
    if connection and row is None:
        raise HTTPException(404, f"No connection {connection!r} on {provider_id!r}.")
    return found[0], row, key, proxies


async def discover(state: AdminState, provider_id: str) -> ModelList:
    """Read the provider's own model list now (the catalog's for a static type) into the shared
    store (omniroute.model_lists) that every router lists from. A failed read keeps the last good
    list there, with why."""
    lists = ModelLists(state.redis, state.settings.env)
    provider, row, key, proxies = await _stored(state, provider_id, None)
    kind = provider_type(provider["type"])
    config = model_lists.fingerprint(provider)
    if kind is not None and kind.list_models == "static":
        return await lists.succeeded(provider_id, ((k, m) for k, names in kind.models.items() for m in names),
                                     "catalog", config)
    outcome = await provider_calls.call(
        state.settings, provider_calls.OPERATIONS["list_models"],
        provider_calls.target(provider, row, key, "", proxies=proxies, crypto=state.crypto))
    if not outcome.ok:
        error = outcome.error or {}
        return await lists.failed(provider_id, f"{error.get('status')} {error.get('code')}: "
                                               f"{error.get('message')}", config)
    ids = [str(m["id"]) for m in outcome.answer.get("data") or [] if m.get("id")]
    return await lists.succeeded(provider_id, ((model_lists.kind_of(i, kind), i) for i in ids), "provider",
                                 config)


async def live_models(state: AdminState, provider_id: str, refresh: bool) -> dict[str, Any]:
    """The provider's model list as the routers list it: the last one read in the background
    (features/model_discovery.py); `refresh`, or none read yet, reads it now. 502 when a read
    made now fails (the last good list stays in use)."""
    listed = None if refresh else await ModelLists(state.redis, state.settings.env).read(provider_id)
    cached = listed is not None
    if listed is None:
        listed = await discover(state, provider_id)
        if listed.error and listed.failed_at >= listed.fetched_at:
            raise HTTPException(502, f"The provider's model list could not be read: {listed.error}")
    return {"provider": provider_id, "models": [{"id": m, "kind": k} for k, m in listed.models],
            **listed.as_json(), "cached": cached}


def _test_model(provider: dict[str, Any], requested: str | None) -> str:
    if requested:
        return requested
    if provider.get("models"):
        return str(provider["models"][0])
    kind = provider_type(provider["type"])
    for names in (kind.models.values() if kind else []):
        if names:
            return names[0]
    return ""


async def test_provider(state: AdminState, caller: Caller, provider_id: str, model: str | None,
                        connection: str | None) -> dict[str, Any]:
    """A real minimal call: its latency, or the provider's error."""
    provider, row, key, proxies = await _stored(state, provider_id, connection)
    chosen = _test_model(provider, model)
    started = time.monotonic()
    outcome = await provider_calls.call(
        state.settings, provider_calls.OPERATIONS["test"],
        provider_calls.target(provider, row, key, chosen, proxies=proxies, crypto=state.crypto))
    latency = round((time.monotonic() - started) * 1000, 1)
    await audit.record(state, caller, "providers.test", provider_id, detail={"ok": outcome.ok, "model": chosen})
    return {"provider": provider_id, "connection": (row or {}).get("name"), "model": chosen,
            "ok": outcome.ok,
            "latencyMs": outcome.answer.get("latency_ms", latency) if outcome.ok else latency,
            "error": outcome.error}


async def validate(state: AdminState, provider: dict[str, Any], test: bool, model: str | None) -> dict[str, Any]:
    """Check a provider configuration before saving it; with `test`, also a real minimal call
    with the given credential."""
    try:
        spec = ProviderSpec.model_validate(provider)
    except ValidationError as exc:
        return {"valid": False, "errors": [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                                           for e in exc.errors()]}
    kind = provider_type(spec.type)
    if kind is not None and not (spec.base_url or kind.base_url):
        return {"valid": False, "errors": [
            {"loc": "base_url", "msg": f"the type {spec.type!r} has no default: give a base_url"}]}
    result: dict[str, Any] = {"valid": True, "errors": []}
    if test:
        connection = spec.connections[0] if spec.connections else None
        dumped = spec.model_dump()
        chosen = _test_model(dumped, model)
        async with state.pool.connection() as conn:
            proxies = await admin_settings_repo.load(conn, "proxy")
        outcome = await provider_calls.call(
            state.settings, provider_calls.OPERATIONS["test"],
            provider_calls.target(dumped, connection.model_dump() if connection else None,
                                  (connection.api_key or "") if connection else "", chosen,
                                  proxies=proxies, crypto=state.crypto))
        result["test"] = {"ok": outcome.ok, "model": chosen, "error": outcome.error,
                          "latencyMs": outcome.answer.get("latency_ms")}
        result["valid"] = outcome.ok
    return result
