"""/api/cli-tools: the coding CLIs on the admin's machine, and their configs pointed at this
gateway (cli_tools.py does the work)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from omniroute_admin import audit, cli_tools
from omniroute_admin.deps import admin_state
from omniroute_admin.gateway_url import public_url
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["cli-tools"])


class WriteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An OmniRoute key for the tool (create one with POST /api/keys): only hashes are stored here,
    # so the admin cannot supply one itself.
    api_key: str = Field(alias="apiKey", min_length=8, max_length=500)
    base_url: str | None = Field(default=None, alias="baseUrl", pattern=r"^https?://", max_length=500)
    model: str | None = Field(default=None, min_length=1, max_length=200)


def _tool(tool_id: str) -> cli_tools.Tool:
    tool = cli_tools.TOOLS.get(tool_id)
    if tool is None:
        raise HTTPException(404, f"Unknown tool {tool_id!r}; known: {sorted(cli_tools.TOOLS)}.")
    return tool


@router.get("/api/cli-tools/runtime/{tool_id}", summary="Is the CLI installed and runnable here?")
async def runtime(tool_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(cli_tools.runtime, _tool(tool_id))


async def _settings(tool_id: str, request: Request) -> dict[str, Any]:
    tool = _tool(tool_id)
    found = await asyncio.to_thread(cli_tools.current, tool)
    gateway = public_url(admin_state(request).settings)
    expected = gateway if tool.id in ("claude", "gemini") else f"{gateway}/v1"
    return {**await asyncio.to_thread(cli_tools.runtime, tool), **found, "gatewayUrl": gateway,
            "pointsAtGateway": found.get("baseUrl") == expected}


async def _write(tool_id: str, body: WriteBody, request: Request) -> dict[str, Any]:
    tool = _tool(tool_id)
    state = admin_state(request)
    base_url = body.base_url or public_url(state.settings)
    try:
        written = await asyncio.to_thread(cli_tools.write, tool, base_url, body.api_key, body.model)
    except cli_tools.ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    await audit.record(state, request, "cli_tools.write", tool.id,
                       detail={"path": written["written"], "backup": written["backup"], "baseUrl": base_url})
    return {**written, "baseUrl": base_url}


def _register(tool_id: str) -> None:
    async def get(request: Request) -> dict[str, Any]:
        return await _settings(tool_id, request)

    async def post(body: WriteBody, request: Request) -> dict[str, Any]:
        return await _write(tool_id, body, request)

    path = f"/api/cli-tools/{tool_id}-settings"
    router.add_api_route(path, get, methods=["GET"], summary=f"{tool_id}: runtime and current config")
    router.add_api_route(path, post, methods=["POST"],
                         summary=f"{tool_id}: point its config at this gateway (backup kept)")


for _id in cli_tools.TOOLS:
    _register(_id)
