"""The teams table (its one owner): a team's allowed models, rate limits and budget. Every key
belongs to a team ("default" unless it says otherwise); the team "default" always exists."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from omniroute.config.spec import TeamSpec

DEFAULT_TEAM = "default"


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "allowed_models": row["allowed_models"],
            "limits": row["limits"] or {}, "budget": row["budget"], "mcp_access": row.get("mcp_access"),
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


async def get(conn: AsyncConnection[Any], team_id: str) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM teams WHERE id = %s", (team_id,))
    row = await cursor.fetchone()
    return _json(row) if row else None


async def list_teams(conn: AsyncConnection[Any], team_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every team by id (only `team_ids` when given), each with how many keys it holds."""
    cursor = conn.cursor(row_factory=dict_row)
    where, params = ("WHERE t.id = ANY(%s)", (team_ids,)) if team_ids is not None else ("", ())
    await cursor.execute(
        f"""SELECT t.*, (SELECT count(*) FROM api_keys k WHERE k.team_id = t.id) AS key_count
            FROM teams t {where} ORDER BY t.id""", params)
    return [{**_json(row), "key_count": int(row["key_count"])} for row in await cursor.fetchall()]


async def ids(conn: AsyncConnection[Any]) -> set[str]:
    rows = await (await conn.execute("SELECT id FROM teams")).fetchall()
    return {row[0] for row in rows}


async def exists(conn: AsyncConnection[Any], team_id: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM teams WHERE id = %s", (team_id,))).fetchone()
    return row is not None


async def name_taken(conn: AsyncConnection[Any], name: str, other_than: str) -> bool:
    row = await (await conn.execute("SELECT 1 FROM teams WHERE name = %s AND id <> %s",
                                    (name, other_than))).fetchone()
    return row is not None


async def upsert(conn: AsyncConnection[Any], spec: TeamSpec) -> None:
    """Create or replace the team `spec.id` (idempotent: the config file applies it each start)."""
    await conn.execute(
        """INSERT INTO teams (id, name, allowed_models, limits, budget, mcp_access)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
             allowed_models = EXCLUDED.allowed_models, limits = EXCLUDED.limits,
             budget = EXCLUDED.budget, mcp_access = EXCLUDED.mcp_access,
             updated_at = CASE WHEN (teams.name, teams.allowed_models, teams.limits, teams.budget,
                                     teams.mcp_access)
                                    IS NOT DISTINCT FROM
                                    (EXCLUDED.name, EXCLUDED.allowed_models, EXCLUDED.limits, EXCLUDED.budget,
                                     EXCLUDED.mcp_access)
                               THEN teams.updated_at ELSE now() END""",
        (spec.id, spec.display_name,
         None if spec.allowed_models is None else Jsonb(spec.allowed_models),
         Jsonb(spec.limits.stored()), None if spec.budget is None else Jsonb(spec.budget.stored()),
         _jsonb(spec.mcp_access)))


async def key_count(conn: AsyncConnection[Any], team_id: str) -> int:
    row = await (await conn.execute("SELECT count(*) FROM api_keys WHERE team_id = %s", (team_id,))).fetchone()
    return int(row[0]) if row else 0


async def delete(conn: AsyncConnection[Any], team_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM teams WHERE id = %s", (team_id,))
    return cursor.rowcount > 0


async def upsert_rows(conn: AsyncConnection[Any], rows: list[dict[str, Any]]) -> None:
    """Configuration sync: make the teams exactly `rows` (whole table rows) without deleting a
    team that stays (a delete would cascade to its management tokens): upsert each, then drop
    those not named (delete_except). The caller has already removed the keys that reference them."""
    for row in rows:
        await conn.execute(
            """INSERT INTO teams (id, name, allowed_models, limits, budget, mcp_access)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                 allowed_models = EXCLUDED.allowed_models, limits = EXCLUDED.limits,
                 budget = EXCLUDED.budget, mcp_access = EXCLUDED.mcp_access, updated_at = now()""",
            (row["id"], row["name"], _jsonb(row.get("allowed_models")), Jsonb(row.get("limits") or {}),
             _jsonb(row.get("budget")), _jsonb(row.get("mcp_access"))))


async def delete_except(conn: AsyncConnection[Any], keep: list[str]) -> None:
    """Drop every team not in `keep` (never "default"), once no key references them."""
    await conn.execute("DELETE FROM teams WHERE NOT (id = ANY(%s)) AND id <> %s", (keep, DEFAULT_TEAM))


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)
