"""The management password: an argon2id hash in Postgres, seeded from INITIAL_PASSWORD once."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from omniroute.store import admin_password_repo

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
        if await admin_password_repo.stored_hash(conn) is not None:
            return
        digest = await asyncio.to_thread(hash_password, initial_password)
        await admin_password_repo.insert_initial(conn, digest)


async def verify(pool: AsyncConnectionPool, password: str) -> bool:
    async with pool.connection() as conn:
        stored = await admin_password_repo.stored_hash(conn)
    if stored is None:
        return False
    # Hashing is CPU-bound for ~50 ms: off the event loop so other requests keep flowing.
    return await asyncio.to_thread(_verify, stored, password)


async def change(conn: AsyncConnection[Any], new_password: str) -> None:
    await admin_password_repo.replace(conn, await asyncio.to_thread(hash_password, new_password))


async def is_initial(pool: AsyncConnectionPool) -> bool:
    async with pool.connection() as conn:
        return await admin_password_repo.is_initial(conn)
