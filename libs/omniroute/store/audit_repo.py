"""The audit_log table: one row per management change (written by the admin's audit module)."""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from omniroute.store import pg_text


@dataclass(frozen=True, slots=True)
class Entry:
    actor: str
    action: str
    target: str
    before_digest: str | None
    after_digest: str | None
    ip: str
    request_id: str
    detail: dict[str, Any]
    team_id: str = ""   # the team the act concerned ("" for platform-wide acts)


def _storable(entry: Entry) -> Entry:
    """Without NUL characters (pg_text): a refusal's model name may hold one."""
    t = pg_text.text
    return replace(entry, actor=t(entry.actor), action=t(entry.action), target=t(entry.target),
                   ip=t(entry.ip), request_id=t(entry.request_id), team_id=t(entry.team_id),
                   detail=pg_text.json_value(entry.detail))


async def insert(conn: AsyncConnection[Any], entry: Entry) -> None:
    entry = _storable(entry)
    values = astuple(entry)
    await conn.execute("INSERT INTO audit_log (actor, action, target, before_digest, after_digest, ip, "
                       "request_id, detail, team_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       (*values[:-2], Jsonb(entry.detail), entry.team_id))


async def insert_gateway_refusals(conn: AsyncConnection[Any], rows: list[tuple[datetime, Entry]]) -> int:
    """Gateway refusals (accounting, from the bus) with the moment they happened; a refusal
    already kept (a redelivery) is skipped. Returns how many rows were written."""
    written = 0
    for at, kept in rows:
        entry = _storable(kept)
        cursor = await conn.execute(
            "INSERT INTO audit_log (at, actor, action, target, ip, request_id, detail, team_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (request_id, action) WHERE action LIKE 'gateway.%%' DO NOTHING",
            (at, entry.actor, entry.action, entry.target, entry.ip, entry.request_id, Jsonb(entry.detail),
             entry.team_id))
        written += cursor.rowcount
    return written


async def insert_at(conn: AsyncConnection[Any], rows: list[tuple[datetime, Entry]]) -> None:
    """Rows that carry the moment they happened (accounting's MCP call records: the caller
    makes them once per request, mcp_calls_repo.insert_new says which are new)."""
    for at, kept in rows:
        entry = _storable(kept)
        await conn.execute(
            "INSERT INTO audit_log (at, actor, action, target, ip, request_id, detail, team_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (at, entry.actor, entry.action, entry.target, entry.ip, entry.request_id, Jsonb(entry.detail),
             entry.team_id))


async def query(conn: AsyncConnection[Any], *, limit: int, offset: int, action: str | None,
                actor_name: str | None, target: str | None, since: datetime | None,
                until: datetime | None, team_id: str | None = None,
                within_teams: frozenset[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Newest first, and how many rows match in all. `within_teams` (a team admin's scope):
    only rows about one of those teams."""
    clauses: list[str] = []
    params: list[Any] = []
    if within_teams is not None:
        clauses.append("team_id = ANY(%s)")
        params.append(sorted(within_teams))
    if action and action.endswith("*"):   # "providers.*" filters a family of actions
        clauses.append("action LIKE %s")
        params.append(action[:-1].replace("%", r"\%").replace("_", r"\_") + "%")
    elif action:
        clauses.append("action = %s")
        params.append(action)
    for column, value in (("actor", actor_name), ("target", target), ("team_id", team_id)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    for condition, moment in (("at >= %s", since), ("at < %s", until)):
        if moment:
            clauses.append(condition)
            params.append(moment)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT count(*) AS n FROM audit_log {where}", params)
    total = (await cursor.fetchone() or {"n": 0})["n"]
    await cursor.execute(f"SELECT * FROM audit_log {where} ORDER BY at DESC, id DESC LIMIT %s OFFSET %s",
                         [*params, limit, offset])
    rows = [{"id": r["id"], "at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
             "target": r["target"], "before_digest": r["before_digest"], "after_digest": r["after_digest"],
             "ip": r["ip"], "request_id": r["request_id"], "detail": r["detail"],
             "team_id": r["team_id"]}
            for r in await cursor.fetchall()]
    return rows, int(total)


async def prune(conn: AsyncConnection[Any], retention_days: int) -> int:
    cursor = await conn.execute("DELETE FROM audit_log WHERE at < now() - make_interval(days => %s)",
                                (retention_days,))
    return cursor.rowcount
