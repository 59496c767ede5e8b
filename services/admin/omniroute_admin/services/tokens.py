"""Management API tokens: bearer credentials for automation, each with a role and (team_admin)
one team. The secret is shown once, at creation; only its SHA-256 is kept. A token is looked up
in Postgres on every call (one indexed read), so that a DELETE refuses it at once on every admin
replica; its last use is written at most once a minute."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException

from omniroute.secrets import hash_api_key
from omniroute.store import management_tokens_repo as repo
from omniroute.store import people_repo
from omniroute_admin import access, audit
from omniroute_admin.deps import Caller
from omniroute_admin.state import AdminState

TOKEN_PREFIX = "omr_mt_"
# How many characters of a token the list shows (the prefix and 4 more: enough to recognise it).
_SHOWN = len(TOKEN_PREFIX) + 4
# token id → monotonic time of the last use we wrote (saves the UPDATE within the minute).
_touched: dict[str, float] = {}


def is_management_token(presented: str) -> bool:
    return presented.startswith(TOKEN_PREFIX)


def principal_of_token(token: repo.ManagementToken) -> access.Principal:
    role: access.Role = token.role  # type: ignore[assignment]  # the table's CHECK holds it to ROLES
    return access.Principal(kind="token", actor=f"token:{token.name}", role=role,
                            team_ids=frozenset({token.team_id}) if token.team_id else frozenset())


async def authenticate(state: AdminState, presented: str) -> access.Principal | None:
    """The principal of a valid token; None for an unknown, revoked (deleted) or expired one."""
    async with state.pool.connection() as conn:
        found = await repo.by_hash(conn, hash_api_key(presented))
        if found is None or found.expired(datetime.now(UTC)):
            return None
        now = time.monotonic()
        if now - _touched.get(found.id, -1e9) >= repo.TOUCH_EVERY_S:
            _touched[found.id] = now
            await repo.touch(conn, found.id)
    return principal_of_token(found)


def _check_scope(caller: Caller, role: str, team_id: str | None) -> None:
    if role == "owner" and not caller.principal.at_least("owner"):
        raise HTTPException(403, "Only an owner may create a token with the owner role.")
    if role == "team_admin" and not team_id:
        raise HTTPException(400, "A team_admin token needs a team_id (the team it manages).")
    if role != "team_admin" and team_id:
        raise HTTPException(400, f"team_id applies to team_admin tokens only; a {role} token sees "
                                 "every team.")


async def create(state: AdminState, caller: Caller, *, name: str, role: str, team_id: str | None,
                 expires_at: datetime | None) -> dict[str, Any]:
    _check_scope(caller, role, team_id)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise HTTPException(400, "expires_at is in the past.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with state.pool.connection() as conn, conn.transaction():
        if team_id and not await people_repo.known_teams(conn, [team_id]):
            raise HTTPException(400, f"No team {team_id!r}.")
        if await repo.name_taken(conn, name):
            raise HTTPException(409, f"A token named {name!r} exists already.")
        token = await repo.insert(conn, token_id="mt_" + uuid.uuid4().hex[:16], name=name,
                                  token_hash=hash_api_key(secret), token_prefix=secret[:_SHOWN],
                                  role=role, team_id=team_id, expires_at=expires_at,
                                  created_by=caller.actor)
        await audit.record(state, caller, "tokens.create", token.id, conn=conn, team_id=team_id or "",
                           detail={"name": name, "role": role})
    # The secret appears here and nowhere else, ever.
    return {**token.as_json(), "token": secret}


async def listing(state: AdminState) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        return [token.as_json() for token in await repo.list_tokens(conn)]


async def revoke(state: AdminState, caller: Caller, token_id: str) -> None:
    async with state.pool.connection() as conn, conn.transaction():
        token = await repo.by_id(conn, token_id)
        if token is None:
            raise HTTPException(404, f"No management token {token_id!r}.")
        if token.role == "owner" and not caller.principal.at_least("owner"):
            raise HTTPException(403, "Only an owner may delete an owner token.")
        await repo.delete(conn, token_id)
        await audit.record(state, caller, "tokens.delete", token_id, conn=conn,
                           team_id=token.team_id or "", detail={"name": token.name, "role": token.role})
    _touched.pop(token_id, None)
