"""The mcp_servers table (its one owner): the organisation's upstream MCP tool servers. The
credentials the gateway injects (`headers`, a stdio server's `env`) are stored encrypted with the
master key, as connections' credentials are, and never leave the admin in clear."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from omniroute.config.spec import McpServerSpec
from omniroute.secrets import Crypto


class UnknownConnection(ValueError):
    """The server names an OAuth connection that does not exist."""


def _seal(crypto: Crypto, values: dict[str, str] | None) -> str | None:
    return crypto.encrypt(orjson.dumps(values).decode()) if values else None


async def list_servers(conn: AsyncConnection[Any], server_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows as stored (ciphertexts included), by id; only `server_ids` when given."""
    cursor = conn.cursor(row_factory=dict_row)
    where, params = ("WHERE id = ANY(%s)", (server_ids,)) if server_ids is not None else ("", ())
    await cursor.execute(f"SELECT * FROM mcp_servers {where} ORDER BY id", params)
    return list(await cursor.fetchall())


async def get(conn: AsyncConnection[Any], server_id: str) -> dict[str, Any] | None:
    found = await list_servers(conn, [server_id])
    return found[0] if found else None


async def upsert(conn: AsyncConnection[Any], spec: McpServerSpec, crypto: Crypto) -> None:
    """Create or replace the server `spec.id`. Headers or env None keep the stored ones ({} clears
    them); a transport change drops the other transport's credentials. UnknownConnection when
    `oauth_connection` names no connection."""
    headers_enc = _seal(crypto, spec.headers) if spec.headers is not None else None
    env_enc = _seal(crypto, spec.env) if spec.env is not None else None
    try:
        await conn.execute(
            """INSERT INTO mcp_servers (id, name, transport, url, command, headers_enc, env_enc,
                                        oauth_connection_id, timeout_s, price_per_call_usd, enabled)
               VALUES (%(id)s, %(name)s, %(transport)s, %(url)s, %(command)s, %(headers)s, %(env)s,
                       %(oauth)s, %(timeout)s, %(price)s, %(enabled)s)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, transport = EXCLUDED.transport,
                 url = EXCLUDED.url, command = EXCLUDED.command,
                 headers_enc = CASE WHEN EXCLUDED.transport <> 'http' THEN NULL
                                    WHEN %(keep_headers)s THEN mcp_servers.headers_enc
                                    ELSE EXCLUDED.headers_enc END,
                 env_enc = CASE WHEN EXCLUDED.transport <> 'stdio' THEN NULL
                                WHEN %(keep_env)s THEN mcp_servers.env_enc
                                ELSE EXCLUDED.env_enc END,
                 oauth_connection_id = EXCLUDED.oauth_connection_id, timeout_s = EXCLUDED.timeout_s,
                 price_per_call_usd = EXCLUDED.price_per_call_usd, enabled = EXCLUDED.enabled,
                 updated_at = now()""",
            {"id": spec.id, "name": spec.display_name, "transport": spec.transport, "url": spec.url,
             "command": Jsonb(spec.command) if spec.command is not None else None,
             "headers": headers_enc, "env": env_enc, "oauth": spec.oauth_connection,
             "timeout": spec.timeout_s, "price": spec.price_per_call_usd, "enabled": spec.enabled,
             "keep_headers": spec.headers is None, "keep_env": spec.env is None})
    except errors.ForeignKeyViolation:
        raise UnknownConnection(f"No connection {spec.oauth_connection!r} (give '<provider>:<connection name>')."
                                ) from None


async def delete(conn: AsyncConnection[Any], server_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM mcp_servers WHERE id = %s", (server_id,))
    return cursor.rowcount > 0


async def ids(conn: AsyncConnection[Any]) -> set[str]:
    rows = await (await conn.execute("SELECT id FROM mcp_servers")).fetchall()
    return {row[0] for row in rows}
