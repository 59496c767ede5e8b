"""Writes and reads of the configuration tables, shared by the admin API and the config file.

Every write is an idempotent upsert keyed by the natural id (provider id, connection name,
key name), so applying the same file twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from omniroute.config.routing_spec import ComboSpec, RoutingSettings
from omniroute.config.spec import KeySpec, ProviderSpec
from omniroute.secrets import Crypto, generate_api_key, hash_api_key, key_prefix, mask
from omniroute.store import database_repo


async def upsert_provider(conn: AsyncConnection[Any], spec: ProviderSpec, crypto: Crypto, *,
                          replace_connections: bool = True) -> None:
    """Create or update a provider and its connections. With `replace_connections`, connections
    not named in `spec` are removed (the spec is the whole truth)."""
    await conn.execute(
        """INSERT INTO providers (id, type, base_url, models, settings, enabled)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, base_url = EXCLUDED.base_url,
             models = EXCLUDED.models, settings = EXCLUDED.settings, enabled = EXCLUDED.enabled,
             updated_at = now()""",
        (spec.id, spec.type, spec.base_url, Jsonb(spec.models), Jsonb(spec.settings), spec.enabled))
    for connection in spec.connections:
        encrypted = crypto.encrypt(connection.api_key) if connection.api_key else None
        await conn.execute(
            """INSERT INTO connections (id, provider_id, name, api_key_enc, priority, enabled, settings)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (provider_id, name) DO UPDATE SET
                 api_key_enc = COALESCE(EXCLUDED.api_key_enc, connections.api_key_enc),
                 priority = EXCLUDED.priority, enabled = EXCLUDED.enabled,
                 settings = EXCLUDED.settings, updated_at = now()""",
            (f"{spec.id}:{connection.name}", spec.id, connection.name, encrypted,
             connection.priority, connection.enabled, Jsonb(connection.settings)))
    if replace_connections:
        await conn.execute("DELETE FROM connections WHERE provider_id = %s AND NOT (name = ANY(%s))",
                           (spec.id, [c.name for c in spec.connections]))


async def delete_provider(conn: AsyncConnection[Any], provider_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM providers WHERE id = %s", (provider_id,))
    return cursor.rowcount > 0


async def list_providers(conn: AsyncConnection[Any], crypto: Crypto | None = None,
                         provider_id: str | None = None) -> list[dict[str, Any]]:
    """Providers with their connections; credentials masked, never in clear."""
    cursor = conn.cursor(row_factory=dict_row)
    where, params = ("WHERE id = %s", (provider_id,)) if provider_id else ("", ())
    await cursor.execute(f"SELECT * FROM providers {where} ORDER BY id", params)
    providers = await cursor.fetchall()
    await cursor.execute("SELECT * FROM connections ORDER BY provider_id, priority, name")
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for row in await cursor.fetchall():
        shown = None
        if row["api_key_enc"]:
            shown = mask(crypto.decrypt(row["api_key_enc"])) if crypto else "…"
        by_provider.setdefault(row["provider_id"], []).append({
            "name": row["name"], "api_key": shown, "priority": row["priority"],
            "enabled": row["enabled"], "settings": row["settings"]})
    return [{"id": p["id"], "type": p["type"], "base_url": p["base_url"], "models": p["models"],
             "enabled": p["enabled"], "settings": p["settings"],
             "connections": by_provider.get(p["id"], []),
             "created_at": p["created_at"].isoformat(), "updated_at": p["updated_at"].isoformat()}
            for p in providers]


async def provider_types(conn: AsyncConnection[Any]) -> dict[str, str]:
    """provider id → catalog type (what accounting prices a provider's usage by)."""
    rows = await (await conn.execute("SELECT id, type FROM providers")).fetchall()
    return {row[0]: row[1] for row in rows}


async def count_providers(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT count(*) FROM providers")).fetchone()
    return int(row[0]) if row else 0


# --- connections: credentials for calls the admin makes, OAuth tokens ------------------------

async def connection_credential(conn: AsyncConnection[Any], provider_id: str, name: str | None
                                ) -> tuple[str, str | None, dict[str, Any]] | None:
    """(name, encrypted credential, settings) of the named connection, else of the first enabled
    one by priority; None when there is none."""
    query = ("SELECT name, api_key_enc, settings FROM connections WHERE provider_id = %s "
             + ("AND name = %s " if name else "AND enabled ")
             + "ORDER BY priority, name LIMIT 1")
    row = await (await conn.execute(query, (provider_id, name) if name else (provider_id,))).fetchone()
    return (row[0], row[1], row[2] or {}) if row else None


async def save_oauth_connection(conn: AsyncConnection[Any], provider_id: str, name: str, access_enc: str,
                                settings: dict[str, Any]) -> None:
    """Create the connection, or give it the new token; `settings` merged into its own."""
    await conn.execute(
        """INSERT INTO connections (id, provider_id, name, api_key_enc, priority, enabled, settings)
           VALUES (%s, %s, %s, %s, 0, true, %s)
           ON CONFLICT (provider_id, name) DO UPDATE SET api_key_enc = EXCLUDED.api_key_enc,
             settings = coalesce(connections.settings, '{}'::jsonb) || EXCLUDED.settings,
             updated_at = now()""",
        (f"{provider_id}:{name}", provider_id, name, access_enc, Jsonb(settings)))


async def oauth_settings(conn: AsyncConnection[Any], provider_id: str
                         ) -> list[tuple[str, str, bool, Any]]:
    """(connection id, name, enabled, settings.oauth) of each of the provider's connections."""
    rows = await (await conn.execute(
        "SELECT id, name, enabled, settings->'oauth' FROM connections WHERE provider_id = %s "
        "ORDER BY priority, name", (provider_id,))).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# --- API keys -----------------------------------------------------------------------------------

async def count_keys(conn: AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT count(*) FROM api_keys")).fetchone()
    return int(row[0]) if row else 0


async def key_names(conn: AsyncConnection[Any], key_ids: list[str]) -> dict[str, str]:
    cursor = await conn.execute("SELECT id, name FROM api_keys WHERE id = ANY(%s)", (key_ids,))
    return {row[0]: row[1] for row in await cursor.fetchall()}


async def upsert_key(conn: AsyncConnection[Any], spec: KeySpec) -> tuple[str, str | None]:
    """Create or update a key by name. Returns (id, clear key) — the clear key only when it was
    generated now, so that the caller can show it once."""
    cursor = await conn.execute("SELECT id FROM api_keys WHERE name = %s", (spec.name,))
    existing = await cursor.fetchone()
    generated = None
    if existing is None:
        clear = spec.key or generate_api_key()
        generated = None if spec.key else clear
        key_id = "key_" + uuid.uuid4().hex[:16]
        await conn.execute(
            """INSERT INTO api_keys (id, name, key_hash, key_prefix, enabled, allowed_models, limits,
                                     budget, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (key_id, spec.name, hash_api_key(clear), key_prefix(clear), spec.enabled,
             _json_or_null(spec.allowed_models), Jsonb(spec.limits), _json_or_null(spec.budget),
             spec.expires_at))
        return key_id, generated
    key_id = existing[0]
    await conn.execute(
        """UPDATE api_keys SET enabled = %s, allowed_models = %s, limits = %s, budget = %s,
             expires_at = %s, updated_at = now() WHERE id = %s""",
        (spec.enabled, _json_or_null(spec.allowed_models), Jsonb(spec.limits),
         _json_or_null(spec.budget), spec.expires_at, key_id))
    if spec.key:
        await conn.execute("UPDATE api_keys SET key_hash = %s, key_prefix = %s WHERE id = %s",
                           (hash_api_key(spec.key), key_prefix(spec.key), key_id))
    return key_id, None


async def create_key(conn: AsyncConnection[Any], spec: KeySpec) -> tuple[str, str]:
    """A new key (the name must be free); returns (id, clear key) to be shown once."""
    clear = spec.key or generate_api_key()
    key_id, _ = await upsert_key(conn, spec.model_copy(update={"key": clear}))
    return key_id, clear


async def delete_key(conn: AsyncConnection[Any], key_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM api_keys WHERE id = %s OR name = %s", (key_id, key_id))
    return cursor.rowcount > 0


async def list_keys(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM api_keys ORDER BY created_at, name")
    return [{"id": r["id"], "name": r["name"], "key_prefix": r["key_prefix"], "enabled": r["enabled"],
             "allowed_models": r["allowed_models"], "limits": r["limits"], "budget": r["budget"],
             "expires_at": r["expires_at"].isoformat() if r["expires_at"] else None,
             "created_at": r["created_at"].isoformat()}
            for r in await cursor.fetchall()]


def _json_or_null(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


# --- routing: aliases, combos, routing settings ---------------------------------------------

async def upsert_alias(conn: AsyncConnection[Any], alias: str, target: str) -> None:
    await conn.execute(
        """INSERT INTO aliases (alias, target) VALUES (%s, %s)
           ON CONFLICT (alias) DO UPDATE SET target = EXCLUDED.target, updated_at = now()""",
        (alias, target))


async def delete_alias(conn: AsyncConnection[Any], alias: str) -> bool:
    cursor = await conn.execute("DELETE FROM aliases WHERE alias = %s", (alias,))
    return cursor.rowcount > 0


async def list_aliases(conn: AsyncConnection[Any]) -> dict[str, str]:
    cursor = await conn.execute("SELECT alias, target FROM aliases ORDER BY alias")
    return {row[0]: row[1] for row in await cursor.fetchall()}


async def upsert_combo(conn: AsyncConnection[Any], spec: ComboSpec) -> None:
    await conn.execute(
        """INSERT INTO combos (name, spec) VALUES (%s, %s)
           ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now()""",
        (spec.name, Jsonb(spec.model_dump(mode="json"))))


async def delete_combo(conn: AsyncConnection[Any], name: str) -> bool:
    cursor = await conn.execute("DELETE FROM combos WHERE name = %s", (name,))
    return cursor.rowcount > 0


async def list_combos(conn: AsyncConnection[Any]) -> list[ComboSpec]:
    cursor = await conn.execute("SELECT spec FROM combos ORDER BY name")
    return [ComboSpec.model_validate(row[0]) for row in await cursor.fetchall()]


async def set_routing_setting(conn: AsyncConnection[Any], key: str, value: Any) -> None:
    """One RoutingSettings field (validated by the caller through RoutingSettings)."""
    if key not in RoutingSettings.model_fields:
        raise ValueError(f"unknown routing setting {key!r}")
    await conn.execute(
        """INSERT INTO routing_settings (key, value) VALUES (%s, %s)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
        (key, Jsonb(value)))


async def get_routing_settings(conn: AsyncConnection[Any]) -> RoutingSettings:
    cursor = await conn.execute("SELECT key, value FROM routing_settings")
    return RoutingSettings.from_rows({row[0]: row[1] for row in await cursor.fetchall()})


async def apply_routing_settings(conn: AsyncConnection[Any], settings: RoutingSettings) -> None:
    """Store the fields that were given (model_fields_set), leaving the others as they are."""
    dumped = settings.model_dump(mode="json")
    for key in settings.model_fields_set:
        await set_routing_setting(conn, key, dumped[key])


# --- the whole configuration, for the snapshot -------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigRows:
    """Every row of the configuration tables, as omniroute.config.snapshot builds its view."""

    providers: list[dict[str, Any]]        # by id
    connections: list[dict[str, Any]]      # by provider, priority, name
    keys: list[dict[str, Any]]
    aliases: dict[str, str]
    combos: dict[str, Any]                 # name → spec document
    routing_settings: dict[str, Any]       # key → value
    teams: list[dict[str, Any]]


async def config_rows(conn: AsyncConnection[Any]) -> ConfigRows:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute("SELECT * FROM providers ORDER BY id")
    providers = await cursor.fetchall()
    await cursor.execute("SELECT * FROM connections ORDER BY provider_id, priority, name")
    connections = await cursor.fetchall()
    await cursor.execute("SELECT * FROM api_keys")
    keys = await cursor.fetchall()
    await cursor.execute("SELECT alias, target FROM aliases")
    aliases = {row["alias"]: row["target"] for row in await cursor.fetchall()}
    await cursor.execute("SELECT name, spec FROM combos")
    combos = {row["name"]: row["spec"] for row in await cursor.fetchall()}
    await cursor.execute("SELECT key, value FROM routing_settings")
    routing = {row["key"]: row["value"] for row in await cursor.fetchall()}
    await cursor.execute("SELECT * FROM teams ORDER BY id")
    teams = await cursor.fetchall()
    return ConfigRows(providers=providers, connections=connections, keys=keys, aliases=aliases,
                      combos=combos, routing_settings=routing, teams=teams)


async def save_oauth_token(conn: AsyncConnection[Any], connection_id: str, access_enc: str,
                           oauth: dict[str, Any]) -> None:
    """A refreshed OAuth token: the access token as the credential, `oauth` merged into the
    connection's `settings.oauth`."""
    await conn.execute(
        """UPDATE connections SET api_key_enc = %s,
             settings = jsonb_set(coalesce(settings, '{}'::jsonb), '{oauth}',
                                  coalesce(settings->'oauth', '{}'::jsonb) || %s::jsonb),
             updated_at = now()
           WHERE id = %s""",
        (access_enc, Jsonb(oauth), connection_id))


# --- whole tables, for configuration sync ----------------------------------------------------

class UnknownColumns(ValueError):
    """Rows name columns this schema does not have (they come from a newer deployment)."""


async def replace_tables(conn: AsyncConnection[Any], tables: dict[str, list[dict[str, Any]]]) -> None:
    """Replace the rows of these configuration tables (given parents first) in the caller's
    transaction."""
    await database_repo.delete_all(conn, list(tables))
    for table, rows in tables.items():
        if not rows:
            continue
        columns = await database_repo.columns(conn, table)
        unknown = sorted({k for row in rows for k in row} - set(columns))
        if unknown:
            raise UnknownColumns(f"{table}: columns {unknown} do not exist here (upgrade this deployment)")
        await database_repo.insert_rows(conn, table, columns, rows)
