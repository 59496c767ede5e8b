"""The admin_password table: one row, the argon2id hash of the management password (hashing and
checking are the admin's; this module only stores the hash)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection


async def stored_hash(conn: AsyncConnection[Any]) -> str | None:
    row = await (await conn.execute("SELECT password_hash FROM admin_password")).fetchone()
    return str(row[0]) if row else None


async def insert_initial(conn: AsyncConnection[Any], digest: str) -> None:
    """The first start's hash; a replica that raced here and lost changes nothing."""
    await conn.execute("INSERT INTO admin_password (id, password_hash, is_initial) "
                       "VALUES (true, %s, true) ON CONFLICT (id) DO NOTHING", (digest,))


async def replace(conn: AsyncConnection[Any], digest: str) -> None:
    await conn.execute(
        """INSERT INTO admin_password (id, password_hash, is_initial) VALUES (true, %s, false)
           ON CONFLICT (id) DO UPDATE SET password_hash = EXCLUDED.password_hash,
             is_initial = false, updated_at = now()""", (digest,))


async def is_initial(conn: AsyncConnection[Any]) -> bool:
    """True until the password is changed (and while none is stored)."""
    row = await (await conn.execute("SELECT is_initial FROM admin_password")).fetchone()
    return bool(row[0]) if row else True
