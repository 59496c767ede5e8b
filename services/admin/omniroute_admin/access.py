"""Who may do what on the management API: roles, the Principal behind a call, and each route's
required role.

Roles, from most to least powerful:
- owner: everything, including granting the owner role (the break-glass password is an owner);
- admin: everything else;
- team_admin: their teams' keys, limits and usage only; anything of another team is 404, not
  403, so that ids do not leak;
- viewer: read-only everywhere, the audit log included.

A route's required role is declared once, where the route is, with `openapi_extra=requires(...)`;
the same value is enforced (require_session → enforce) and documented (OpenAPI
`x-required-role`). A route that declares nothing needs `viewer` to read (GET, HEAD) and `admin`
to change anything. A route that admits team admins (`requires("team_admin")`) must itself scope
what it reads and writes with `Principal.sees_team`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException
from starlette.requests import Request

Role = Literal["owner", "admin", "team_admin", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "team_admin", "viewer")
_RANK: dict[str, int] = {"viewer": 0, "team_admin": 1, "admin": 2, "owner": 3}
ROLE_EXTENSION = "x-required-role"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def requires(role: Role) -> dict[str, Any]:
    """`openapi_extra` of a route: the least role that may call it (enforced and documented)."""
    return {ROLE_EXTENSION: role}


def required_role(route: Any, method: str) -> Role:
    """The route's declared role, or the default: viewer to read, admin to change."""
    extra = getattr(route, "openapi_extra", None) or {}
    declared = extra.get(ROLE_EXTENSION)
    if declared in _RANK:
        role: Role = declared
        return role
    return "viewer" if method.upper() in READ_METHODS else "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the management API.

    kind: "password" (the break-glass owner login), "person" (single sign-on or a person's
    session), "token" (a management API token), "anonymous" (login switched off: an owner),
    "sync-peer" (another deployment's sync token).
    actor: what the audit log records (admin, person:<email>, token:<name>, anonymous, sync-peer).
    team_ids: the teams a team_admin manages (empty for every other role: they see all teams)."""

    kind: str
    actor: str
    role: Role
    team_ids: frozenset[str] = frozenset()
    person_id: str = ""

    @property
    def is_global(self) -> bool:
        """Sees every team (any role but team_admin)."""
        return self.role != "team_admin"

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def sees_team(self, team_id: str) -> bool:
        return self.is_global or team_id in self.team_ids

    def visible_teams(self, team_ids: Iterable[str]) -> list[str]:
        return [t for t in team_ids if self.sees_team(t)]


OWNER_BREAK_GLASS = Principal(kind="password", actor="admin", role="owner")
ANONYMOUS = Principal(kind="anonymous", actor="anonymous", role="owner")
SYNC_PEER = Principal(kind="sync-peer", actor="sync-peer", role="admin")


def principal_of(request: Request) -> Principal:
    """The principal the gate established for this request (anonymous before any gate ran)."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else ANONYMOUS


def set_principal(request: Request, principal: Principal) -> None:
    request.state.principal = principal
    request.state.actor = principal.actor


def enforce(request: Request, principal: Principal) -> None:
    """403 unless the principal's role reaches the route's required role (a read-only viewer
    trying a write, a team admin on a platform-wide route)."""
    route = request.scope.get("route")
    needed = required_role(route, request.method)
    if not principal.at_least(needed):
        raise HTTPException(403, f"This needs the {needed} role; you are {principal.role}.")
