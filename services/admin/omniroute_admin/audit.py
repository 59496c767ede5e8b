"""The audit trail: one row per management change, written by the endpoint that made it."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from psycopg import AsyncConnection
from starlette.requests import Request

from omniroute.store import audit_repo
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
    entry = audit_repo.Entry(actor=actor(request), action=action, target=target, before_digest=digest(before),
                             after_digest=digest(after), ip=client_ip(request),
                             request_id=request_id(request), detail=detail or {})
    if conn is not None:
        await audit_repo.insert(conn, entry)
        return
    async with state.pool.connection() as own:
        await audit_repo.insert(own, entry)

