"""The provider catalog and provider checks: /api/models/catalog, /api/provider-models (custom
models), /api/providers/{id}/models (live, cached), /api/providers/{id}/test,
/api/providers/validate and /api/provider-nodes (custom compatible providers)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from omniroute.catalog import PROVIDER_TYPES, provider_type
from omniroute.config.spec import ProviderSpec
from omniroute.store import catalog_repo, config_repo
from omniroute_admin import audit, provider_calls
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])
KINDS = ("chat", "embedding", "image", "audio")
MODELS_TTL_S = 300  # a provider's live model list, cached in Redis


def _state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


class CustomModel(BaseModel):
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)
    kind: str = "chat"

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        return value


class ProviderNode(BaseModel):
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=128)
    type: str = "openai-compatible"
    base_url: str = Field(pattern=r"^https?://")
    prefix: str = Field(default="", pattern=r"^[a-zA-Z0-9._-]{0,32}$")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in ("openai-compatible", "anthropic-compatible"):
            raise ValueError("type must be openai-compatible or anthropic-compatible")
        return value


class TestRequest(BaseModel):
    model: str | None = None
    connection: str | None = None


class ValidateRequest(BaseModel):
    provider: dict[str, Any]
    test: bool = False          # also make a real minimal call with the given credential
    model: str | None = None


def _type_view(name: str) -> dict[str, Any]:
    kind = PROVIDER_TYPES[name]
    return {"type": name, "family": kind.family, "baseUrl": kind.base_url, "auth": kind.auth,
            "prefix": kind.prefix, "capabilities": list(kind.capabilities), "listModels": kind.list_models,
            "models": {k: list(v) for k, v in kind.models.items()}}


@router.get("/api/models/catalog", summary="Every model by provider and kind, and the provider types")
async def catalog(request: Request) -> dict[str, Any]:
    state = _state(request)
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


@router.get("/api/provider-models", summary="Custom models added to providers")
async def list_custom(request: Request, provider: str | None = Query(None)) -> dict[str, Any]:
    async with _state(request).pool.connection() as conn:
        rows = await catalog_repo.custom_models(conn, provider)
    return {"models": [{"provider": r[0], "model": r[1], "kind": r[2]} for r in rows]}


@router.post("/api/provider-models", status_code=201, summary="Add a custom model to a provider")
async def add_custom(body: CustomModel, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await config_repo.list_providers(conn, provider_id=body.provider):
            raise HTTPException(404, f"No provider named {body.provider!r}.")
        await catalog_repo.add_custom_model(conn, body.provider, body.model, body.kind)
        await audit.record(state, request, "provider_models.add", f"{body.provider}/{body.model}",
                           after=body.model_dump(), conn=conn)
    await state.announce("providers")
    return body.model_dump()


@router.delete("/api/provider-models", summary="Remove a custom model")
async def delete_custom(request: Request, provider: str = Query(...), model: str = Query(...),
                        kind: str | None = Query(None)) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await catalog_repo.delete_custom_model(conn, provider, model, kind):
            raise HTTPException(404, f"No custom model {provider}/{model}.")
        await audit.record(state, request, "provider_models.delete", f"{provider}/{model}", conn=conn)
    await state.announce("providers")
    return {"deleted": f"{provider}/{model}"}


async def _stored(request: Request, provider_id: str, connection: str | None
                  ) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    state = _state(request)
    async with state.pool.connection() as conn:
        found = await config_repo.list_providers(conn, provider_id=provider_id)
        if not found:
            raise HTTPException(404, f"No provider named {provider_id!r}.")
        row, key = await provider_calls.stored_key(conn, state.crypto, provider_id, connection)
    if connection and row is None:
        raise HTTPException(404, f"No connection {connection!r} on {provider_id!r}.")
    return found[0], row, key


@router.get("/api/providers/{provider_id}/models", summary="The provider's live model list (cached)")
async def live_models(provider_id: str, request: Request, refresh: bool = Query(False)) -> dict[str, Any]:
    state = _state(request)
    cache_key = f"{state.settings.env}:provider-models:{provider_id}"
    if not refresh and (cached := await state.redis.get(cache_key)):
        return {**orjson.loads(cached), "cached": True}
    provider, row, key = await _stored(request, provider_id, None)
    kind = provider_type(provider["type"])
    if kind is not None and kind.list_models == "static":
        models = [{"id": m, "kind": k} for k, names in kind.models.items() for m in names]
        answer: dict[str, Any] = {"provider": provider_id, "models": models, "source": "catalog"}
    else:
        outcome = await provider_calls.call(state.settings, provider_calls.OPERATIONS["list_models"],
                                            provider_calls.target(provider, row, key, ""))
        if not outcome.ok:
            error = outcome.error or {}
            raise HTTPException(502, f"The provider's model list could not be read: {error.get('message')}")
        models = [{"id": m["id"]} for m in outcome.answer.get("data") or []]
        answer = {"provider": provider_id, "models": models, "source": "provider",
                  "fetchedAt": round(time.time())}
    await state.redis.set(cache_key, orjson.dumps(answer), ex=MODELS_TTL_S)
    return {**answer, "cached": False}


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


@router.post("/api/providers/{provider_id}/test",
             summary="A real minimal call: latency and the error if any")
async def test_provider(provider_id: str, request: Request,
                        body: TestRequest | None = None) -> dict[str, Any]:
    body = body or TestRequest()
    provider, row, key = await _stored(request, provider_id, body.connection)
    model = _test_model(provider, body.model)
    started = time.monotonic()
    outcome = await provider_calls.call(_state(request).settings, provider_calls.OPERATIONS["test"],
                                        provider_calls.target(provider, row, key, model))
    latency = round((time.monotonic() - started) * 1000, 1)
    await audit.record(_state(request), request, "providers.test", provider_id,
                       detail={"ok": outcome.ok, "model": model})
    return {"provider": provider_id, "connection": (row or {}).get("name"), "model": model,
            "ok": outcome.ok,
            "latencyMs": outcome.answer.get("latency_ms", latency) if outcome.ok else latency,
            "error": outcome.error}


@router.post("/api/providers/validate", summary="Check a provider configuration before saving it")
async def validate(body: ValidateRequest, request: Request) -> dict[str, Any]:
    try:
        spec = ProviderSpec.model_validate(body.provider)
    except ValidationError as exc:
        return {"valid": False, "errors": [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                                           for e in exc.errors()]}
    kind = provider_type(spec.type)
    problems = []
    if kind is not None and not (spec.base_url or kind.base_url):
        problems.append({"loc": "base_url", "msg": f"the type {spec.type!r} has no default: give a base_url"})
    if problems:
        return {"valid": False, "errors": problems}
    result: dict[str, Any] = {"valid": True, "errors": []}
    if body.test:
        connection = spec.connections[0] if spec.connections else None
        provider = spec.model_dump()
        model = _test_model(provider, body.model)
        outcome = await provider_calls.call(
            _state(request).settings, provider_calls.OPERATIONS["test"],
            provider_calls.target(provider, connection.model_dump() if connection else None,
                                  (connection.api_key or "") if connection else "", model))
        result["test"] = {"ok": outcome.ok, "model": model, "error": outcome.error,
                          "latencyMs": outcome.answer.get("latency_ms")}
        result["valid"] = outcome.ok
    return result


@router.get("/api/provider-nodes", summary="Custom provider nodes (compatible endpoints)")
async def list_nodes(request: Request) -> dict[str, Any]:
    async with _state(request).pool.connection() as conn:
        return {"nodes": await catalog_repo.list_nodes(conn)}


@router.post("/api/provider-nodes", status_code=201, summary="Add a custom provider node")
async def add_node(node: ProviderNode, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await catalog_repo.add_node(conn, {**node.model_dump(), "base_url": node.base_url.rstrip("/")}):
            raise HTTPException(409, f"A provider node named {node.id!r} exists.")
        await audit.record(state, request, "provider_nodes.create", node.id, after=node.model_dump(),
                           conn=conn)
    return node.model_dump()


@router.get("/api/provider-nodes/{node_id}", summary="One custom provider node")
async def get_node(node_id: str, request: Request) -> dict[str, Any]:
    nodes = (await list_nodes(request))["nodes"]
    for node in nodes:
        if node["id"] == node_id:
            return dict(node)
    raise HTTPException(404, f"No provider node {node_id!r}.")


@router.delete("/api/provider-nodes/{node_id}", summary="Remove a custom provider node")
async def delete_node(node_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    async with state.pool.connection() as conn:
        if not await catalog_repo.delete_node(conn, node_id):
            raise HTTPException(404, f"No provider node {node_id!r}.")
        await audit.record(state, request, "provider_nodes.delete", node_id, conn=conn)
    return {"deleted": node_id}
