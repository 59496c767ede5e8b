"""Typed dependencies of the API routes: the process's AdminState and the Caller (who is
asking, for the audit), as `Annotated` aliases so that a handler simply declares
`state: StateDep, caller: CallerDep`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from omniroute_admin.access import Principal, principal_of
from omniroute_admin.requestctx import client_ip, request_id
from omniroute_admin.state import AdminState


def admin_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a management call: what an audit row records."""

    actor: str        # admin (break-glass password), person:<email>, token:<name>, anonymous, sync-peer
    ip: str
    request_id: str
    principal: Principal  # role and team scope (omniroute_admin.access)

    @classmethod
    def of(cls, request: Request) -> Caller:
        """The request's caller, as far as the gate has established it: require_session (or the
        dashboard's gate, or the sync token check) sets the principal first."""
        principal = principal_of(request)
        actor = str(getattr(request.state, "actor", "") or principal.actor)
        return cls(actor=actor, ip=client_ip(request), request_id=request_id(request),
                   principal=principal)


def caller(request: Request) -> Caller:
    return Caller.of(request)


StateDep = Annotated[AdminState, Depends(admin_state)]
# Resolved after the router's own dependencies (require_session), which set the actor.
CallerDep = Annotated[Caller, Depends(caller)]
