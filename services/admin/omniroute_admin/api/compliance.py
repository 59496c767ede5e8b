"""GET /api/compliance/audit-log: the audit trail, newest first, paginated and filterable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from omniroute.store import audit_repo
from omniroute_admin.deps import StateDep
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["compliance"])


@router.get("/api/compliance/audit-log", summary="Audit log (newest first)")
async def audit_log(state: StateDep,
                    limit: int = Query(50, ge=1, le=500),
                    offset: int = Query(0, ge=0),
                    action: str | None = Query(None, max_length=100,
                                               description='exact, or a prefix ending in "*"'),
                    actor: str | None = Query(None, max_length=100),
                    target: str | None = Query(None, max_length=200),
                    since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        entries, total = await audit_repo.query(conn, limit=limit, offset=offset, action=action,
                                           actor_name=actor, target=target, since=since, until=until)
    return {"entries": entries, "total": total, "limit": limit, "offset": offset}
