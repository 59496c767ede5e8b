"""The management_tokens table: bearer tokens for automation (CI, Terraform, scripts), each with
a role and, for a team_admin token, one team. Only the SHA-256 of a token is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

# last_used_at is written at most once per this many seconds per token (not on every call).
TOUCH_EVERY_S = 60


@dataclass(frozen=True, slots=True)
class ManagementToken:
    id: str
    name: str
    token_prefix: str
    role: str
    team_id: str | None
    expires_at: datetime | None
    created_by: str
    last_used_at: datetime | None
    created_at: datetime

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "prefix": self.token_prefix, "role": self.role,
                "team_id": self.team_id, "created_by": self.created_by,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "created_at": self.created_at.isoformat()}


_COLUMNS = "id, name, token_prefix, role, team_id, expires_at, created_by, last_used_at, created_at"


def _token(row: dict[str, Any]) -> ManagementToken:
    return ManagementToken(**row)


async def insert(conn: AsyncConnection[Any], *, token_id: str, name: str, token_hash: str,
                 token_prefix: str, role: str, team_id: str | None, expires_at: datetime | None,
                 created_by: str) -> ManagementToken:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        f"""INSERT INTO management_tokens (id, name, token_hash, token_prefix, role, team_id,
                                           expires_at, created_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (token_id, name, token_hash, token_prefix, role, team_id, expires_at, created_by))
    row = await cursor.fetchone()
    assert row is not None
    return _token(row)


async def by_hash(conn: AsyncConnection[Any], token_hash: str) -> ManagementToken | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT {_COLUMNS} FROM management_tokens WHERE token_hash = %s", (token_hash,))
    row = await cursor.fetchone()
    return _token(row) if row else None


async def by_id(conn: AsyncConnection[Any], token_id: str) -> ManagementToken | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT {_COLUMNS} FROM management_tokens WHERE id = %s", (token_id,))
    row = await cursor.fetchone()
    return _token(row) if row else None


async def name_taken(conn: AsyncConnection[Any], name: str) -> bool:
    cursor = await conn.execute("SELECT 1 FROM management_tokens WHERE name = %s", (name,))
    return await cursor.fetchone() is not None


async def list_tokens(conn: AsyncConnection[Any]) -> list[ManagementToken]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT {_COLUMNS} FROM management_tokens ORDER BY created_at, name")
    return [_token(row) for row in await cursor.fetchall()]


async def touch(conn: AsyncConnection[Any], token_id: str) -> bool:
    """Note a use, unless one was noted within TOUCH_EVERY_S (True when the row changed)."""
    cursor = await conn.execute(
        "UPDATE management_tokens SET last_used_at = now() WHERE id = %s AND (last_used_at IS NULL "
        "OR last_used_at < now() - make_interval(secs => %s))", (token_id, TOUCH_EVERY_S))
    return cursor.rowcount > 0


async def delete(conn: AsyncConnection[Any], token_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM management_tokens WHERE id = %s", (token_id,))
    return cursor.rowcount > 0
