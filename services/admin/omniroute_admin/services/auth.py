"""The management password and what a client sees before logging in (session mechanics:
sessions.py)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from omniroute.store import config_repo
from omniroute_admin import audit, passwords, sessions
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState


async def change_password(state: AdminState, caller: Caller, current: str, new: str, *,
                          keep_token: str) -> None:
    """Checked against the current password (with the login lockout); ends every session but
    the one presenting `keep_token`."""
    if not await sessions.check_password(state, caller, current):
        raise HTTPException(403, "The current password is wrong.")
    if new == current:
        raise HTTPException(400, "The new password must differ from the current one.")
    async with state.pool.connection() as conn, conn.transaction():
        await passwords.change(conn, new)
        await audit.record(state, caller, "auth.password_changed", "admin", conn=conn)
    # Whoever else held a session logged in with the old password: they log in again.
    await sessions.end_all_but(state, keep_token)


async def first_run(state: AdminState, authenticated: bool) -> dict[str, Any]:
    """What a dashboard or installer needs before logging in; counts only once authenticated
    (or while login is off); never any configuration."""
    async with state.pool.connection() as conn:
        providers = await config_repo.count_providers(conn)
        keys = await config_repo.count_keys(conn)
    initial = await passwords.is_initial(state.pool)
    require_login = await sessions.login_required(state)
    answer: dict[str, Any] = {"requireLogin": require_login, "authenticated": authenticated,
                              "passwordIsInitial": initial}
    if authenticated or not require_login:
        answer.update({"providers": providers, "keys": keys, "firstRun": initial or not providers})
    return answer
