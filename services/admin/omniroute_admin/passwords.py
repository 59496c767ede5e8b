"""The management password: an argon2id hash in Postgres, seeded from INITIAL_PASSWORD once."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

# argon2-cffi's defaults (RFC 9106 low-memory profile): ~50 ms and 64 MiB per check, which with
# the per-IP lockout makes online guessing hopeless.
_hasher = PasswordHasher()
MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def ensure_initial(pool: AsyncConnectionPool, initial_password: str) -> None:
    """First start: store INITIAL_PASSWORD's hash. Every replica may race here; the first wins."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT 1 FROM admin_password")).fetchone()
        if row is not None:
            return
        digest = await asyncio.to_thread(hash_password, initial_password)
        await conn.execute("INSERT INTO admin_password (id, password_hash, is_initial) "
                           "VALUES (true, %s, true) ON CONFLICT (id) DO NOTHING", (digest,))


async def verify(pool: AsyncConnectionPool, password: str) -> bool:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT password_hash FROM admin_password")).fetchone()
    if row is None:
        return False
    # Hashing is CPU-bound for ~50 ms: off the event loop so other requests keep flowing.
    return await asyncio.to_thread(_verify, row[0], password)


async def change(conn: AsyncConnection[Any], new_password: str) -> None:
    digest = await asyncio.to_thread(hash_password, new_password)
    await conn.execute(
        """INSERT INTO admin_password (id, password_hash, is_initial) VALUES (true, %s, false)
           ON CONFLICT (id) DO UPDATE SET password_hash = EXCLUDED.password_hash,
             is_initial = false, updated_at = now()""", (digest,))


async def is_initial(pool: AsyncConnectionPool) -> bool:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT is_initial FROM admin_password")).fetchone()
    return bool(row[0]) if row else True
