"""The audit trail: one row per management change, written by the endpoint that made it."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from starlette.requests import Request

from omniroute_admin.requestctx import client_ip, request_id
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin.audit")


def digest(value: Any) -> str | None:
    """sha256 of the canonical JSON (sorted keys): equal values, equal digests."""
    if value is None:
        return None
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def actor(request: Request) -> str:
    """Set by require_session: "admin" for a session, "anonymous" while login is not required."""
    return str(getattr(request.state, "actor", "") or "anonymous")


async def record(state: AdminState, request: Request, action: str, target: str = "", *,
                 before: Any = None, after: Any = None, detail: dict[str, Any] | None = None,
                 conn: AsyncConnection[Any] | None = None) -> None:
    """Write one audit row; with `conn`, inside the caller's transaction (so the change and its
    record commit together)."""
    params = (actor(request), action, target, digest(before), digest(after), client_ip(request),
              request_id(request), Jsonb(detail or {}))
    query = ("INSERT INTO audit_log (actor, action, target, before_digest, after_digest, ip, "
             "request_id, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
    if conn is not None:
        await conn.execute(query, params)
        return
    async with state.pool.connection() as own:
        await own.execute(query, params)


async def query(conn: AsyncConnection[Any], *, limit: int, offset: int, action: str | None,
                actor_name: str | None, target: str | None, since: datetime | None,
                until: datetime | None) -> tuple[list[dict[str, Any]], int]:
    clauses: list[str] = []
    params: list[Any] = []
    if action:
        # "providers.*" filters a family of actions.
        if action.endswith("*"):
            clauses.append("action LIKE %s")
            params.append(action[:-1].replace("%", r"\%").replace("_", r"\_") + "%")
        else:
            clauses.append("action = %s")
            params.append(action)
    if actor_name:
        clauses.append("actor = %s")
        params.append(actor_name)
    if target:
        clauses.append("target = %s")
        params.append(target)
    if since:
        clauses.append("at >= %s")
        params.append(since)
    if until:
        clauses.append("at < %s")
        params.append(until)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT count(*) AS n FROM audit_log {where}", params)
    total = (await cursor.fetchone() or {"n": 0})["n"]
    await cursor.execute(f"SELECT * FROM audit_log {where} ORDER BY at DESC, id DESC LIMIT %s OFFSET %s",
                         [*params, limit, offset])
    rows = [{"id": r["id"], "at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
             "target": r["target"], "before_digest": r["before_digest"], "after_digest": r["after_digest"],
             "ip": r["ip"], "request_id": r["request_id"], "detail": r["detail"]}
            for r in await cursor.fetchall()]
    return rows, int(total)


async def prune(conn: AsyncConnection[Any], retention_days: int) -> int:
    cursor = await conn.execute("DELETE FROM audit_log WHERE at < now() - make_interval(days => %s)",
                                (retention_days,))
    return cursor.rowcount
