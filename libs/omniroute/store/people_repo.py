"""The people table: who manages the gateway, with a role and, for team admins, their teams.
People come from the API/dashboard, the config file, or their first single sign-on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    email: str
    name: str
    role: str
    team_ids: tuple[str, ...]
    source: str
    oidc_subject: str | None
    enabled: bool
    last_login_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role,
                "team_ids": list(self.team_ids), "source": self.source, "enabled": self.enabled,
                "sso": self.oidc_subject is not None,
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None}


def _person(row: dict[str, Any]) -> Person:
    return Person(id=row["id"], email=row["email"], name=row["name"], role=row["role"],
                  team_ids=tuple(row["team_ids"] or ()), source=row["source"],
                  oidc_subject=row["oidc_subject"], enabled=row["enabled"],
                  last_login_at=row["last_login_at"])


async def _one(conn: AsyncConnection[Any], where: str, value: str) -> Person | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(f"SELECT * FROM people WHERE {where} = %s", (value,))
    row = await cursor.fetchone()
    return _person(row) if row else None


async def by_id(conn: AsyncConnection[Any], person_id: str) -> Person | None:
    return await _one(conn, "id", person_id)


async def by_email(conn: AsyncConnection[Any], email: str) -> Person | None:
    return await _one(conn, "lower(email)", email.lower())


async def by_oidc_subject(conn: AsyncConnection[Any], subject: str) -> Person | None:
    return await _one(conn, "oidc_subject", subject)


async def list_people(conn: AsyncConnection[Any]) -> list[Person]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM people ORDER BY email")
    return [_person(row) for row in await cursor.fetchall()]


async def upsert(conn: AsyncConnection[Any], *, email: str, name: str, role: str,
                 team_ids: list[str], source: str, enabled: bool = True,
                 oidc_subject: str | None = None) -> Person:
    """Create or update by e-mail (case-insensitive); the id stays. `oidc_subject` None keeps
    the stored one. Two first sign-ins of one person at the same moment make one row: the one
    that loses the race (a unique violation, inside its own savepoint) updates the winner's."""
    for attempt in range(2):
        existing = await by_email(conn, email)
        person_id = existing.id if existing else "person_" + uuid.uuid4().hex[:16]
        try:
            async with conn.transaction():
                cursor = conn.cursor(row_factory=dict_row)
                await cursor.execute(
                    """INSERT INTO people (id, email, name, role, team_ids, source, enabled, oidc_subject)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role,
                         team_ids = EXCLUDED.team_ids, enabled = EXCLUDED.enabled,
                         oidc_subject = COALESCE(EXCLUDED.oidc_subject, people.oidc_subject),
                         updated_at = now()
                       RETURNING *""",
                    (person_id, email, name, role, Jsonb(team_ids), source, enabled, oidc_subject))
                row = await cursor.fetchone()
        except errors.UniqueViolation:
            if attempt:
                raise
            continue
        assert row is not None
        return _person(row)
    raise AssertionError("unreachable")


async def note_login(conn: AsyncConnection[Any], person_id: str) -> None:
    await conn.execute("UPDATE people SET last_login_at = now() WHERE id = %s", (person_id,))


async def delete(conn: AsyncConnection[Any], person_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM people WHERE id = %s", (person_id,))
    return cursor.rowcount > 0


async def known_teams(conn: AsyncConnection[Any], team_ids: list[str]) -> set[str]:
    """Which of `team_ids` are teams (a person's or a token's team scope must name real teams)."""
    if not team_ids:
        return set()
    cursor = await conn.execute("SELECT id FROM teams WHERE id = ANY(%s)", (team_ids,))
    return {row[0] for row in await cursor.fetchall()}


async def update(conn: AsyncConnection[Any], person_id: str, *, email: str, name: str, role: str,
                 team_ids: list[str], enabled: bool) -> Person | None:
    """Replace a person's editable fields by id (None when there is no such person)."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        """UPDATE people SET email = %s, name = %s, role = %s, team_ids = %s, enabled = %s,
             updated_at = now() WHERE id = %s RETURNING *""",
        (email, name, role, Jsonb(team_ids), enabled, person_id))
    row = await cursor.fetchone()
    return _person(row) if row else None
