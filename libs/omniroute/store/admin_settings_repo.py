"""The admin_settings table: one JSON document per name (validated by the admin's models; edges
and routers read the whole table into their snapshot)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


async def load(conn: AsyncConnection[Any], name: str) -> dict[str, Any]:
    """The stored document, or {} when there is none."""
    row = await (await conn.execute("SELECT value FROM admin_settings WHERE key = %s", (name,))).fetchone()
    return dict(row[0]) if row else {}


async def load_all(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """Every stored document by name (the snapshot's `settings`)."""
    rows = await (await conn.execute("SELECT key, value FROM admin_settings")).fetchall()
    return {row[0]: row[1] for row in rows}


async def save(conn: AsyncConnection[Any], name: str, value: dict[str, Any]) -> None:
    await conn.execute(
        """INSERT INTO admin_settings (key, value) VALUES (%s, %s)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
        (name, Jsonb(value)))
