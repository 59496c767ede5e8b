"""GET /api/audit (also at its older path /api/compliance/audit-log): the audit trail, newest
first, paginated and filterable by action, actor, target, team and time. Team admins see the
rows about their teams only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from omniroute.store import audit_repo
from omniroute_admin.access import TEAM_SCOPED_READ
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["compliance"])


@router.get("/api/audit", openapi_extra=TEAM_SCOPED_READ, summary="Audit log (newest first)")
@router.get("/api/compliance/audit-log", openapi_extra=TEAM_SCOPED_READ, operation_id="audit_log_compliance",
            summary="Audit log (newest first; the older path of /api/audit)")
async def audit_log(state: StateDep, caller: CallerDep,
                    limit: int = Query(50, ge=1, le=500),
                    offset: int = Query(0, ge=0),
                    action: str | None = Query(None, max_length=100,
                                               description='exact, or a prefix ending in "*"'),
                    actor: str | None = Query(None, max_length=200,
                                              description="admin, person:<email>, token:<name>, key:<id> …"),
                    target: str | None = Query(None, max_length=200),
                    team: str | None = Query(None, max_length=100, description="rows about this team"),
                    since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, Any]:
    scope = caller.principal.team_scope
    async with state.pool.connection() as conn:
        entries, total = await audit_repo.query(
            conn, limit=limit, offset=offset, action=action, actor_name=actor, target=target,
            since=since, until=until, team_id=team,
            within_teams=frozenset(scope) if scope is not None else None)
    return {"entries": entries, "total": total, "limit": limit, "offset": offset}
