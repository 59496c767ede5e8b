"""/api/mcp: the upstream MCP servers the gateway's /mcp endpoint reaches (viewers read them with
their health, admins change them; credentials write-only, shown masked) and the tool calls made
through it (every role reads them, a team admin only their teams')."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from omniroute.config.spec import McpServerSpec
from omniroute_admin.access import requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import mcp
from omniroute_admin.services.mcp import McpServerChange
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["mcp"])


@router.get("/api/mcp/servers", openapi_extra=requires("viewer"))
async def list_servers(state: StateDep) -> dict[str, Any]:
    """Every MCP server with its health (healthy, degraded, unhealthy, probing)."""
    return {"servers": await mcp.list_servers(state)}


@router.post("/api/mcp/servers", status_code=201, openapi_extra=requires("admin"))
async def create_server(spec: McpServerSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await mcp.create_server(state, caller, spec)


@router.get("/api/mcp/servers/{server_id}", openapi_extra=requires("viewer"))
async def get_server(server_id: str, state: StateDep) -> dict[str, Any]:
    return await mcp.get_server(state, server_id)


@router.put("/api/mcp/servers/{server_id}", openapi_extra=requires("admin"))
async def replace_server(server_id: str, spec: McpServerSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """The server becomes the body (headers / env omitted: the stored ones are kept)."""
    return await mcp.replace_server(state, caller, server_id, spec)


@router.patch("/api/mcp/servers/{server_id}", openapi_extra=requires("admin"))
async def change_server(server_id: str, change: McpServerChange, state: StateDep,
                        caller: CallerDep) -> dict[str, Any]:
    return await mcp.change_server(state, caller, server_id, change)


@router.delete("/api/mcp/servers/{server_id}", openapi_extra=requires("admin"))
async def delete_server(server_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await mcp.delete_server(state, caller, server_id)
    return {"deleted": server_id}


@router.get("/api/mcp/calls", openapi_extra=requires("viewer", team_scoped=True))
async def list_calls(state: StateDep, caller: CallerDep,
                     key_id: str | None = Query(None, alias="keyId"),
                     team_id: str | None = Query(None, alias="teamId"),
                     server_id: str | None = Query(None, alias="serverId"),
                     outcome: str | None = Query(None),
                     since: datetime | None = Query(None),
                     until: datetime | None = Query(None),
                     limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Tool calls newest first (`limit` of them) and totals over every matching call."""
    return await mcp.list_calls(state, caller, key_id=key_id, team_id=team_id, server_id=server_id,
                                outcome=outcome, since=since, until=until, limit=limit)
