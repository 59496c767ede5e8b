"""The sync_state table: one row, this deployment's side of configuration sync (its sync token's
hash and ciphertext, the remote's URL, token and ETag, the last push and pull)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

# Advisory lock held while the served document's ETag is checked and the document written.
_SERVED_DOCUMENT_LOCK = 0x53_59_4E_43
COLUMNS = frozenset({"token_hash", "token_enc", "token_created_at", "remote_url", "remote_token_enc",
                     "remote_etag", "local_etag", "last_push_at", "last_pull_at"})


async def state(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """The row (created empty on first use)."""
    await conn.execute("INSERT INTO sync_state (id) VALUES (true) ON CONFLICT DO NOTHING")
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM sync_state")
    return await cursor.fetchone() or {}


async def update(conn: AsyncConnection[Any], **values: Any) -> None:
    unknown = set(values) - COLUMNS
    if unknown:
        raise ValueError(f"sync_state has no columns {sorted(unknown)}")
    await state(conn)
    assignments = ", ".join(f"{name} = %s" for name in values)
    await conn.execute(f"UPDATE sync_state SET {assignments}, updated_at = now()", list(values.values()))


async def lock_served_document(conn: AsyncConnection[Any]) -> None:
    """Until the caller's transaction ends, no other replica checks or writes the served document."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SERVED_DOCUMENT_LOCK,))
