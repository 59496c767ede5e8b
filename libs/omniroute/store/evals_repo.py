"""The eval tables: eval_suites (a suite's JSON spec by name) and eval_runs (one row per run)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb


async def list_suites(conn: AsyncConnection[Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = await (await conn.execute("SELECT name, spec FROM eval_suites ORDER BY name")).fetchall()
    return [(r[0], r[1]) for r in rows]


async def suite_spec(conn: AsyncConnection[Any], name: str) -> dict[str, Any] | None:
    row = await (await conn.execute("SELECT spec FROM eval_suites WHERE name = %s", (name,))).fetchone()
    return row[0] if row else None


async def save_suite(conn: AsyncConnection[Any], name: str, spec: dict[str, Any]) -> None:
    await conn.execute("INSERT INTO eval_suites (name, spec) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                       "SET spec = EXCLUDED.spec, updated_at = now()", (name, Jsonb(spec)))


async def delete_suite(conn: AsyncConnection[Any], name: str) -> bool:
    cursor = await conn.execute("DELETE FROM eval_suites WHERE name = %s", (name,))
    return cursor.rowcount > 0


async def runs(conn: AsyncConnection[Any], suite: str, limit: int) -> list[dict[str, Any]]:
    """The suite's runs, newest first (rows as stored)."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM eval_runs WHERE suite = %s ORDER BY id DESC LIMIT %s", (suite, limit))
    return list(await cursor.fetchall())


async def insert_run(conn: AsyncConnection[Any], suite: str, results: list[dict[str, Any]],
                     passed: int) -> dict[str, Any]:
    """A finished run; returns its row."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "INSERT INTO eval_runs (suite, finished_at, total, passed, results) "
        "VALUES (%s, now(), %s, %s, %s) RETURNING *", (suite, len(results), passed, Jsonb(results)))
    row = await cursor.fetchone()
    assert row is not None   # RETURNING of an INSERT always yields its row
    return row
