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
`x-required-role`, `x-team-scoped`, and a sentence in the operation's description). A route that
declares nothing needs `viewer` to read (GET, HEAD) and `admin` to change anything.

Team admins reach only the routes that scope by team: those declared `requires("team_admin")`
(their writes, and reads that viewers may not make) and reads declared
`requires("viewer", team_scoped=True)` (viewers read everything, a team admin their teams').
Such a route must itself scope what it reads and writes with `Principal.sees_team`, and answer
404 for another team's object. Every other route is refused to a team admin (403), reads
included: a team admin manages their teams' keys, limits and usage, not the platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request

Role = Literal["owner", "admin", "team_admin", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "team_admin", "viewer")
_RANK: dict[str, int] = {"viewer": 0, "team_admin": 1, "admin": 2, "owner": 3}
ROLE_EXTENSION = "x-required-role"
TEAM_SCOPE_EXTENSION = "x-team-scoped"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def requires(role: Role, *, team_scoped: bool = False) -> dict[str, Any]:
    """`openapi_extra` of a route: the least role that may call it (enforced and documented);
    `team_scoped`: the route scopes itself by team, so team admins may call it too (implied by
    the team_admin role)."""
    extra: dict[str, Any] = {ROLE_EXTENSION: role}
    if team_scoped or role == "team_admin":
        extra[TEAM_SCOPE_EXTENSION] = True
    return extra


# Reads every role may make, team admins scoped to their teams' rows (usage, logs, audit).
TEAM_SCOPED_READ: dict[str, Any] = {ROLE_EXTENSION: "viewer", TEAM_SCOPE_EXTENSION: True}


def is_team_scoped(route: Any) -> bool:
    extra = getattr(route, "openapi_extra", None) or {}
    return bool(extra.get(TEAM_SCOPE_EXTENSION)) or extra.get(ROLE_EXTENSION) == "team_admin"


def admits(principal: Principal, route: Any, method: str) -> bool:
    """Whether `principal` may call `route` with `method` (the one rule, enforced and tested)."""
    needed = required_role(route, method)
    if principal.role == "team_admin":
        return is_team_scoped(route) and _RANK[needed] <= _RANK["team_admin"]
    return principal.at_least(needed)


def describe(route: Any, method: str) -> str:
    """The sentence OpenAPI shows for an operation's role."""
    needed = required_role(route, method)
    scoped = is_team_scoped(route)
    who = {"owner": "owners only",
           "admin": "admins and owners",
           "team_admin": "team admins (their teams' objects only; another team's is 404), admins "
                         "and owners",
           "viewer": ("every role; team admins see their teams' rows only" if scoped else
                      "viewers, admins and owners (not team admins: platform-wide)")}[needed]
    return f"Required role: {needed} ({who})."


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

    @property
    def team_scope(self) -> tuple[str, ...] | None:
        """What a query narrows to: None (every team) or a team admin's teams."""
        return None if self.is_global else tuple(sorted(self.team_ids))

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
    if admits(principal, route, request.method):
        return
    needed = required_role(route, request.method)
    if principal.role == "team_admin" and principal.at_least(needed):
        raise HTTPException(403, "Team admins manage their teams' keys, limits and usage only; "
                                 "this route is platform-wide.")
    raise HTTPException(403, f"This needs the {needed} role; you are {principal.role}.")


def _gated_by(route: APIRoute, gate: Callable[..., Any]) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is gate:
            return True
        pending.extend(dependency.dependencies)
    return False


def operations(app: FastAPI) -> list[tuple[APIRoute, str]]:
    """Every (route, method) of the app, routers included at any depth (FastAPI nests them)."""
    found: list[tuple[APIRoute, str]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            found.extend((route, method) for method in sorted(route.methods or ()))
    return found


def document_roles(app: FastAPI, gate: Callable[..., Any]) -> None:
    """Every operation of the OpenAPI document carries `x-required-role` (declared or default)
    and says it in its description; routes without `gate` (login, first-run state, the sync
    peer's route) say what they take instead."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        for route, method in operations(app):
            operation = document.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None or "Required role" in operation.get("description", ""):
                continue   # not in the document, or documented by an earlier call
            if _gated_by(route, gate):
                operation[ROLE_EXTENSION] = required_role(route, method)
                operation[TEAM_SCOPE_EXTENSION] = is_team_scoped(route)
                sentence = describe(route, method)
            else:
                declared = (route.openapi_extra or {}).get(ROLE_EXTENSION)
                operation[ROLE_EXTENSION] = declared or "none"
                sentence = (f"Required role: none (no session: the {declared}'s own credential)."
                            if declared else "Required role: none (public: no session needed).")
            described = operation.get("description", "")
            operation["description"] = f"{sentence}\n\n{described}" if described else sentence
        return document

    app.openapi = openapi  # type: ignore[method-assign]
