"""The dashboard's MCP page (issue 21): upstream MCP servers with their health (create, edit,
delete), each team's MCP access (which servers and tools its keys may use at most) and the
recent tool calls. Every form calls the JSON API's use case (services/mcp.py, services/teams.py),
so validation, audit rows and config announcements are the same."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import Response

from omniroute.config.spec import McpServerSpec
from omniroute_admin.access import requires
from omniroute_admin.dashboard.base import back, button, error_text, form, gate, page, split
from omniroute_admin.deps import Caller, admin_state
from omniroute_admin.services import mcp, teams
from omniroute_admin.services.mcp import McpServerChange
from omniroute_admin.services.teams import TeamChange

router = APIRouter(include_in_schema=False)
PAGE = "/dashboard/mcp"
RECENT_CALLS = 50


def _admin_only(caller: Caller) -> None:
    if not caller.principal.at_least("admin"):
        raise HTTPException(403, f"This needs the admin role; you are {caller.principal.role}.")


def access_text(access: dict[str, list[str]] | None) -> str:
    """A team's access as the form shows it: one `server: tool, tool` (or `server: *`) a line."""
    return "\n".join(f"{server}: {', '.join(tools)}" for server, tools in sorted((access or {}).items()))


def parse_access(text: str) -> dict[str, list[str]] | None:
    """The form's lines back into {server: [tools]}; nothing written = no server (deny)."""
    access: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        server, colon, tools = line.partition(":")
        if not colon or not server.strip():
            raise ValueError(f"write each line as 'server: tool, tool' or 'server: *' (not {line.strip()!r})")
        access[server.strip()] = split(tools)
    return access or None


def _secrets(text: str) -> dict[str, str] | None:
    """`Name: value` lines (headers) or `NAME=value` lines (env); empty = keep the stored ones."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        separator = ":" if ":" in line and ("=" not in line or line.index(":") < line.index("=")) else "="
        name, found, value = line.partition(separator)
        if not found:
            raise ValueError("write each credential as 'Name: value' (a header) or 'NAME=value' (env)")
        values[name.strip()] = value.strip()
    return values or None


def _server_fields(fields: dict[str, str]) -> dict[str, Any]:
    transport = fields.get("transport") or "http"
    found: dict[str, Any] = {
        "name": fields.get("name", "").strip(), "transport": transport,
        "url": fields.get("url", "").strip() or None,
        "command": fields.get("command", "").split() or None,
        "oauth_connection": fields.get("oauth_connection", "").strip() or None,
        "timeout_s": float(fields.get("timeout_s") or 30), "price_per_call_usd": float(fields.get("price") or 0),
        "enabled": fields.get("enabled") == "on"}
    credentials = _secrets(fields.get("credentials", ""))
    if fields.get("clear_credentials") == "on":
        credentials = {}
    if credentials is not None:
        found["headers" if transport == "http" else "env"] = credentials
    return found


@router.get(PAGE, openapi_extra=requires("viewer"))
async def mcp_page(request: Request) -> Response:
    caller = await gate(request)
    state = admin_state(request)
    servers = await mcp.list_servers(state)
    listed_teams = await teams.list_teams(state, caller)
    calls = await mcp.list_calls(state, caller, key_id=None, team_id=None, server_id=None, outcome=None,
                                 since=None, until=None, limit=RECENT_CALLS)
    return await page(request, "mcp.html", "mcp", {
        "servers": servers, "teams": [{**t, "access_text": access_text(t.get("mcp_access"))} for t in listed_teams],
        "calls": calls["calls"], "totals": calls["totals"], "can_edit": caller.principal.at_least("admin")})


@router.post(f"{PAGE}/servers")
async def server_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _admin_only(caller)
        spec = McpServerSpec.model_validate({"id": fields.get("id", "").strip(), **_server_fields(fields)})
        await mcp.create_server(admin_state(request), caller, spec)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back(PAGE, f"Not created: {error_text(exc)}", "error")
    return back(PAGE, f"MCP server {spec.id} created.")


@router.post(PAGE + "/servers/{server_id}")
async def server_update(server_id: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _admin_only(caller)
        change = McpServerChange.model_validate(_server_fields(fields))
        await mcp.change_server(admin_state(request), caller, server_id, change)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back(PAGE, f"Not saved: {error_text(exc)}", "error")
    return back(PAGE, f"MCP server {server_id} saved.")


@router.post(PAGE + "/servers/{server_id}/delete")
async def server_delete(server_id: str, request: Request) -> Response:
    async def delete(caller: Caller) -> None:
        _admin_only(caller)
        await mcp.delete_server(admin_state(request), caller, server_id)
    return await button(request, PAGE, delete, lambda _: f"MCP server {server_id} deleted.")


@router.post(PAGE + "/teams/{team_id}")
async def team_access(team_id: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    try:
        _admin_only(caller)
        change = TeamChange.model_validate({"mcp_access": parse_access(fields.get("access", ""))})
        await teams.change_team(admin_state(request), caller, team_id, change)
    except (HTTPException, ValidationError, ValueError) as exc:
        return back(PAGE, f"Access not saved: {error_text(exc)}", "error")
    return back(PAGE, f"MCP access of team {team_id} saved.")
