"""The audit trail: one row per management change, written by the endpoint that made it."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import HTTPException
from psycopg import AsyncConnection
from starlette.requests import Request

from omniroute.store import audit_repo
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin.audit")


def digest(value: Any) -> str | None:
    """sha256 of the canonical JSON (sorted keys): equal values, equal digests."""
    if value is None:
        return None
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


async def record(state: AdminState, caller: Caller | Request, action: str, target: str = "", *,
                 before: Any = None, after: Any = None, detail: dict[str, Any] | None = None,
                 conn: AsyncConnection[Any] | None = None, team_id: str = "") -> None:
    """Write one audit row; with `conn`, inside the caller's transaction (so the change and its
    record commit together). A Request stands for its Caller (for callers still holding one).
    `team_id`: the team the act concerned (a team admin's audit view shows only those rows)."""
    who = caller if isinstance(caller, Caller) else Caller.of(caller)
    entry = audit_repo.Entry(actor=who.actor, action=action, target=target, before_digest=digest(before),
                             after_digest=digest(after), ip=who.ip, request_id=who.request_id,
                             detail=detail or {}, team_id=team_id)
    if conn is not None:
        await audit_repo.insert(conn, entry)
        return
    async with state.pool.connection() as own:
        await audit_repo.insert(own, entry)


async def deleted(state: AdminState, caller: Caller, delete: Callable[[AsyncConnection[Any]], Awaitable[bool]], *,
                  action: str, target: str, missing: str, announce: str | None = None,
                  team_id: str = "") -> None:
    """A deletion use case: `delete` (a repository call, True when a row went) and its audit row
    on one connection; 404 `missing` when there was nothing to delete; then, with `announce`,
    edges and routers reload their snapshot."""
    async with state.pool.connection() as conn:
        if not await delete(conn):
            raise HTTPException(404, missing)
        await record(state, caller, action, target, conn=conn, team_id=team_id)
    if announce:
        await state.announce(announce)

