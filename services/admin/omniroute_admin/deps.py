"""Small shared helpers of the API modules."""

from __future__ import annotations

from starlette.requests import Request

from omniroute_admin.state import AdminState


def admin_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state
