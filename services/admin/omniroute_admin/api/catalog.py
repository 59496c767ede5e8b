"""The provider catalog and provider checks over HTTP (the use cases: services/catalog.py):
/api/models/catalog, /api/provider-models (custom models), /api/providers/{id}/models (live,
cached), /api/providers/{id}/test, /api/providers/validate and /api/provider-nodes (custom
compatible providers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field, field_validator

from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import catalog
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)])


class CustomModel(BaseModel):
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)
    kind: str = "chat"

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in catalog.KINDS:
            raise ValueError(f"kind must be one of {', '.join(catalog.KINDS)}")
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


@router.get("/api/models/catalog", summary="Every model by provider and kind, and the provider types")
async def get_catalog(state: StateDep) -> dict[str, Any]:
    return await catalog.catalog(state)


@router.get("/api/provider-models", summary="Custom models added to providers")
async def list_custom(state: StateDep, provider: str | None = Query(None)) -> dict[str, Any]:
    return {"models": await catalog.custom_models(state, provider)}


@router.post("/api/provider-models", status_code=201, summary="Add a custom model to a provider")
async def add_custom(body: CustomModel, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await catalog.add_custom_model(state, caller, body.provider, body.model, body.kind)
    return body.model_dump()


@router.delete("/api/provider-models", summary="Remove a custom model")
async def delete_custom(state: StateDep, caller: CallerDep, provider: str = Query(...),
                        model: str = Query(...), kind: str | None = Query(None)) -> dict[str, Any]:
    await catalog.delete_custom_model(state, caller, provider, model, kind)
    return {"deleted": f"{provider}/{model}"}


@router.get("/api/providers/{provider_id}/models", summary="The provider's live model list (cached)")
async def live_models(provider_id: str, state: StateDep, refresh: bool = Query(False)) -> dict[str, Any]:
    return await catalog.live_models(state, provider_id, refresh)


@router.post("/api/providers/{provider_id}/test",
             summary="A real minimal call: latency and the error if any")
async def test_provider(provider_id: str, state: StateDep, caller: CallerDep,
                        body: TestRequest | None = None) -> dict[str, Any]:
    body = body or TestRequest()
    return await catalog.test_provider(state, caller, provider_id, body.model, body.connection)


@router.post("/api/providers/validate", summary="Check a provider configuration before saving it")
async def validate(body: ValidateRequest, state: StateDep) -> dict[str, Any]:
    return await catalog.validate(state, body.provider, body.test, body.model)


@router.get("/api/provider-nodes", summary="Custom provider nodes (compatible endpoints)")
async def list_nodes(state: StateDep) -> dict[str, Any]:
    return {"nodes": await catalog.list_nodes(state)}


@router.post("/api/provider-nodes", status_code=201, summary="Add a custom provider node")
async def add_node(node: ProviderNode, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await catalog.add_node(state, caller, node.model_dump())
    return node.model_dump()


@router.get("/api/provider-nodes/{node_id}", summary="One custom provider node")
async def get_node(node_id: str, state: StateDep) -> dict[str, Any]:
    for node in await catalog.list_nodes(state):
        if node["id"] == node_id:
            return node
    raise HTTPException(404, f"No provider node {node_id!r}.")


@router.delete("/api/provider-nodes/{node_id}", summary="Remove a custom provider node")
async def delete_node(node_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await catalog.delete_node(state, caller, node_id)
    return {"deleted": node_id}
