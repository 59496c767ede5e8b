"""The catalog's own tables: provider_models (custom models added to a provider) and
provider_nodes (custom compatible endpoints)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

NODE_COLUMNS = ("id", "name", "type", "base_url", "prefix")


async def custom_models(conn: AsyncConnection[Any], provider_id: str | None = None) -> list[tuple[str, str, str]]:
    """(provider id, model, kind), of one provider or of all."""
    rows = await (await conn.execute(
        "SELECT provider_id, model, kind FROM provider_models "
        "WHERE %s::text IS NULL OR provider_id = %s ORDER BY provider_id, kind, model",
        (provider_id, provider_id))).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


async def add_custom_model(conn: AsyncConnection[Any], provider_id: str, model: str, kind: str) -> None:
    await conn.execute("INSERT INTO provider_models (provider_id, model, kind) VALUES (%s, %s, %s) "
                       "ON CONFLICT DO NOTHING", (provider_id, model, kind))


async def delete_custom_model(conn: AsyncConnection[Any], provider_id: str, model: str,
                              kind: str | None) -> bool:
    cursor = await conn.execute(
        "DELETE FROM provider_models WHERE provider_id = %s AND model = %s "
        "AND (%s::text IS NULL OR kind = %s)", (provider_id, model, kind, kind))
    return cursor.rowcount > 0


async def list_nodes(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    rows = await (await conn.execute(
        "SELECT id, name, type, base_url, prefix FROM provider_nodes ORDER BY id")).fetchall()
    return [dict(zip(NODE_COLUMNS, r, strict=True)) for r in rows]


async def add_node(conn: AsyncConnection[Any], node: dict[str, Any]) -> bool:
    """False when a node of that id exists (nothing written)."""
    cursor = await conn.execute(
        "INSERT INTO provider_nodes (id, name, type, base_url, prefix) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO NOTHING", tuple(node[c] for c in NODE_COLUMNS))
    return cursor.rowcount > 0


async def delete_node(conn: AsyncConnection[Any], node_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM provider_nodes WHERE id = %s", (node_id,))
    return cursor.rowcount > 0
