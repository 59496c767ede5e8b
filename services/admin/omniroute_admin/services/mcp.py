"""Upstream MCP servers (issue 21) and the tool calls made through the gateway. Servers are
platform-wide: every role reads them (with their health, as the routers record it in Redis),
admins change them; the injected credentials are write-only (stored encrypted, shown masked).
Every change is audited and announced (config.changed) so every router reloads, and a change of
how the server is reached clears its health. Calls: every role reads them, a team admin only
their teams' calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import HTTPException
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field
from redis import exceptions as redis_errors

from omniroute import secrets
from omniroute.config.spec import McpServerSpec
from omniroute.shared_state import mcp_health
from omniroute.store import mcp_call_queries, mcp_servers_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState

OUTCOMES = ("ok", "tool_error", "refused", "upstream_error", "timeout")


class McpServerChange(BaseModel):
    """PATCH /api/mcp/servers/{id}: the fields given are set (headers / env: null or absent keeps
    the stored ones, {} removes them)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    transport: str | None = None
    url: str | None = None
    command: list[str] | None = None
    headers: dict[str, str] | None = None
    env: dict[str, str] | None = None
    oauth_connection: str | None = None
    timeout_s: float | None = None
    price_per_call_usd: float | None = None
    enabled: bool | None = None


def _missing(server_id: str) -> HTTPException:
    return HTTPException(404, f"No MCP server {server_id!r}.")


def _secrets_of(state: AdminState, sealed: str | None) -> dict[str, str]:
    if not sealed:
        return {}
    try:
        opened = orjson.loads(state.crypto.decrypt(sealed))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in opened.items()} if isinstance(opened, dict) else {}


def _masked(values: dict[str, str]) -> dict[str, str]:
    return {name: secrets.mask(value) or "…" for name, value in values.items()}


def _shown(state: AdminState, row: dict[str, Any], health: mcp_health.McpServerHealth | None) -> dict[str, Any]:
    """A server as the API shows it: credentials by name, their values masked."""
    return {"id": row["id"], "name": row["name"], "transport": row["transport"], "url": row["url"],
            "command": row["command"], "headers": _masked(_secrets_of(state, row["headers_enc"])),
            "env": _masked(_secrets_of(state, row["env_enc"])),
            "oauth_connection": row["oauth_connection_id"], "timeout_s": float(row["timeout_s"]),
            "price_per_call_usd": float(row["price_per_call_usd"]), "enabled": row["enabled"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
            "health": health.as_json() if health is not None else None}


def _audited(spec: McpServerSpec) -> dict[str, Any]:
    """What an audit digest covers: credentials by name only."""
    return {**spec.model_dump(mode="json", exclude={"headers", "env"}),
            "header_names": sorted(spec.headers or {}), "env_names": sorted(spec.env or {})}


async def _health(state: AdminState, server_ids: list[str]) -> dict[str, mcp_health.McpServerHealth]:
    """The routers' record; unknown (None) while Redis is away rather than failing the read."""
    try:
        return await mcp_health.health(state.redis, state.settings.env, server_ids)
    except redis_errors.RedisError:
        return {}


async def list_servers(state: AdminState) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        rows = await mcp_servers_repo.list_servers(conn)
    health = await _health(state, [row["id"] for row in rows])
    return [_shown(state, row, health.get(row["id"])) for row in rows]


async def get_server(state: AdminState, server_id: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        row = await mcp_servers_repo.get(conn, server_id)
    if row is None:
        raise _missing(server_id)
    return _shown(state, row, (await _health(state, [server_id])).get(server_id))


def spec_of(row: dict[str, Any]) -> McpServerSpec:
    """The stored server as a spec, its credentials left as they are (None)."""
    return McpServerSpec.model_construct(
        id=row["id"], name=row["name"], transport=row["transport"], url=row["url"], command=row["command"],
        headers=None, env=None, oauth_connection=row["oauth_connection_id"], timeout_s=float(row["timeout_s"]),
        price_per_call_usd=row["price_per_call_usd"], enabled=row["enabled"])


async def save(conn: AsyncConnection[Any], state: AdminState, spec: McpServerSpec) -> bool:
    """Write the server (config file and API alike); True when how it is reached changed (its
    health is to be forgotten)."""
    before = await mcp_servers_repo.get(conn, spec.id)
    try:
        await mcp_servers_repo.upsert(conn, spec, state.crypto)
    except mcp_servers_repo.UnknownConnection as exc:
        raise HTTPException(400, str(exc)) from None
    if before is None:
        return False
    old = spec_of(before)
    return (any(getattr(old, f) != getattr(spec, f) for f in ("transport", "url", "command", "oauth_connection"))
            or spec.headers is not None or spec.env is not None)


async def _after_change(state: AdminState, server_id: str, reached_differently: bool) -> None:
    await state.announce("mcp_servers")
    if reached_differently:
        try:
            await mcp_health.forget(state.redis, state.settings.env, [server_id])
        except redis_errors.RedisError:
            pass   # the breaker heals itself with the first successful call


async def create_server(state: AdminState, caller: Caller, spec: McpServerSpec) -> dict[str, Any]:
    async with state.pool.connection() as conn, conn.transaction():
        if await mcp_servers_repo.get(conn, spec.id) is not None:
            raise HTTPException(409, f"An MCP server {spec.id!r} exists; use PUT or PATCH to change it.")
        await save(conn, state, spec)
        await audit.record(state, caller, "mcp_servers.create", spec.id, conn=conn, after=_audited(spec),
                           detail={"server_id": spec.id})
    await _after_change(state, spec.id, False)
    return await get_server(state, spec.id)


async def replace_server(state: AdminState, caller: Caller, server_id: str, spec: McpServerSpec) -> dict[str, Any]:
    """PUT: the server becomes `spec` (created when it did not exist)."""
    if spec.id != server_id:
        raise HTTPException(400, "The id in the body must match the id in the path.")
    async with state.pool.connection() as conn, conn.transaction():
        before = await mcp_servers_repo.get(conn, server_id)
        reached_differently = await save(conn, state, spec)
        await audit.record(state, caller, "mcp_servers.update" if before else "mcp_servers.create", server_id,
                           conn=conn, before=_audited(spec_of(before)) if before else None, after=_audited(spec),
                           detail={"server_id": server_id})
    await _after_change(state, server_id, reached_differently)
    return await get_server(state, server_id)


async def change_server(state: AdminState, caller: Caller, server_id: str,
                        change: McpServerChange) -> dict[str, Any]:
    given = change.model_fields_set
    async with state.pool.connection() as conn, conn.transaction():
        before = await mcp_servers_repo.get(conn, server_id)
        if before is None:
            raise _missing(server_id)
        merged = {**spec_of(before).model_dump(), **{name: getattr(change, name) for name in given}}
        if "transport" in given and change.transport != before["transport"]:
            # Switching transports drops what only the old one used, unless the change sets it.
            for name in ("url", "oauth_connection", "command"):
                if name not in given:
                    merged[name] = None
        try:
            spec = McpServerSpec.model_validate(merged)
        except ValueError as exc:
            raise HTTPException(400, _first_error(exc)) from None
        reached_differently = await save(conn, state, spec)
        await audit.record(state, caller, "mcp_servers.update", server_id, conn=conn,
                           before=_audited(spec_of(before)), after=_audited(spec),
                           detail={"server_id": server_id, "fields": sorted(given)})
    await _after_change(state, server_id, reached_differently)
    return await get_server(state, server_id)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


async def delete_server(state: AdminState, caller: Caller, server_id: str) -> None:
    """Teams' and keys' access maps may still name it: they grant nothing until a server with
    this id exists again."""
    await audit.deleted(state, caller, lambda conn: mcp_servers_repo.delete(conn, server_id),
                        action="mcp_servers.delete", target=server_id,
                        missing=f"No MCP server {server_id!r}.", announce="mcp_servers")
    try:
        await mcp_health.forget(state.redis, state.settings.env, [server_id])
    except redis_errors.RedisError:
        pass


async def list_calls(state: AdminState, caller: Caller, *, key_id: str | None, team_id: str | None,
                     server_id: str | None, outcome: str | None, since: datetime | None,
                     until: datetime | None, limit: int) -> dict[str, Any]:
    """Tool calls, newest first; a team admin sees only their teams' (another team named: 404)."""
    if outcome is not None and outcome not in OUTCOMES:
        raise HTTPException(400, f"outcome must be one of {', '.join(OUTCOMES)}.")
    if team_id is not None and not caller.principal.sees_team(team_id):
        raise HTTPException(404, f"No team {team_id!r}.")
    scope = None if caller.principal.is_global else sorted(caller.principal.team_ids)
    found = mcp_call_queries.CallFilter(key_id=key_id, team_id=team_id, server_id=server_id, outcome=outcome,
                                        since=since, until=until, team_ids=scope, limit=limit)
    async with state.pool.connection() as conn:
        return await mcp_call_queries.list_calls(conn, found)
