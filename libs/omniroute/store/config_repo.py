"""Writes and reads of the configuration tables, shared by the admin API and the config file.

Every write is an idempotent upsert keyed by the natural id (provider id, connection name,
key name), so applying the same file twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from omniroute.config.routing_spec import ComboSpec, RoutingSettings
from omniroute.config.spec import KeySpec, ProviderSpec
from omniroute.secrets import Crypto, generate_api_key, hash_api_key, key_prefix, mask
from omniroute.store import database_repo, people_repo, teams_repo


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


class UnknownOwner(ValueError):
    """A key names a team or a person that does not exist (the message says which)."""


async def resolve_person(conn: AsyncConnection[Any], person: str | None) -> str | None:
    """A person named by id or e-mail → their id (None: no person)."""
    if not person:
        return None
    found = await people_repo.by_id(conn, person) or (
        await people_repo.by_email(conn, person) if "@" in person else None)
    if found is None:
        raise UnknownOwner(f"No person {person!r} (give a person's id or e-mail).")
    return found.id


async def check_team(conn: AsyncConnection[Any], team_id: str) -> None:
    row = await (await conn.execute("SELECT 1 FROM teams WHERE id = %s", (team_id,))).fetchone()
    if row is None:
        raise UnknownOwner(f"No team {team_id!r}.")


async def upsert_key(conn: AsyncConnection[Any], spec: KeySpec) -> tuple[str, str | None]:
    """Create or update a key by name. Returns (id, clear key) — the clear key only when it was
    generated now, so that the caller can show it once. UnknownOwner when its team or person
    does not exist."""
    await check_team(conn, spec.team)
    person_id = await resolve_person(conn, spec.person)
    cursor = await conn.execute("SELECT id FROM api_keys WHERE name = %s", (spec.name,))
    existing = await cursor.fetchone()
    generated = None
    if existing is None:
        clear = spec.key or generate_api_key()
        generated = None if spec.key else clear
        key_id = "key_" + uuid.uuid4().hex[:16]
        await conn.execute(
            """INSERT INTO api_keys (id, name, key_hash, key_prefix, enabled, allowed_models, limits,
                                     budget, expires_at, team_id, person_id, mcp_access)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (key_id, spec.name, hash_api_key(clear), key_prefix(clear), spec.enabled,
             _json_or_null(spec.allowed_models), Jsonb(spec.limits), _json_or_null(spec.budget),
             spec.expires_at, spec.team, person_id, _json_or_null(spec.mcp_access)))
        return key_id, generated
    key_id = existing[0]
    await conn.execute(
        """UPDATE api_keys SET enabled = %s, allowed_models = %s, limits = %s, budget = %s,
             expires_at = %s, team_id = %s, person_id = %s, mcp_access = %s, updated_at = now()
           WHERE id = %s""",
        (spec.enabled, _json_or_null(spec.allowed_models), Jsonb(spec.limits),
         _json_or_null(spec.budget), spec.expires_at, spec.team, person_id,
         _json_or_null(spec.mcp_access), key_id))
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


# What PATCH /api/keys/{id} may change in place (the secret is not among them).
KEY_FIELDS = ("enabled", "allowed_models", "limits", "budget", "expires_at", "team_id", "person_id",
              "mcp_access")
_JSON_FIELDS = frozenset({"allowed_models", "limits", "budget", "mcp_access"})


async def update_key(conn: AsyncConnection[Any], key_id: str, changes: dict[str, Any]) -> bool:
    """Set the given KEY_FIELDS of the key (by id); False when there is no such key."""
    unknown = set(changes) - set(KEY_FIELDS)
    if unknown:
        raise ValueError(f"not a key field: {sorted(unknown)}")
    if not changes:
        return await get_key(conn, key_id) is not None
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes)
    values = [(_json_or_null(v) if name in _JSON_FIELDS else v) for name, v in changes.items()]
    cursor = await conn.execute(
        sql.SQL("UPDATE api_keys SET {}, updated_at = now() WHERE id = %s").format(assignments),
        [*values, key_id])
    return cursor.rowcount > 0


async def rotate_key(conn: AsyncConnection[Any], key_id: str, grace_seconds: int) -> str | None:
    """A new secret for the key (returned in clear, to be shown once); the current one stays
    valid `grace_seconds` more (0: refused at once), an earlier previous one is dropped. None
    when there is no such key."""
    clear = generate_api_key()
    cursor = await conn.execute(
        """UPDATE api_keys SET
             previous_key_hash = CASE WHEN %(grace)s > 0 THEN key_hash END,
             previous_valid_until = CASE WHEN %(grace)s > 0
                                         THEN now() + make_interval(secs => %(grace)s) END,
             key_hash = %(hash)s, key_prefix = %(prefix)s, updated_at = now()
           WHERE id = %(id)s""",
        {"grace": grace_seconds, "hash": hash_api_key(clear), "prefix": key_prefix(clear), "id": key_id})
    return clear if cursor.rowcount > 0 else None


async def revoke_key(conn: AsyncConnection[Any], key_id: str) -> bool:
    """Refuse the key (and any secret still in its grace period) from now on; the row stays, so
    its usage keeps its name. Revoking twice keeps the first time."""
    cursor = await conn.execute(
        """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), previous_valid_until = NULL,
             previous_key_hash = NULL, updated_at = now() WHERE id = %s""", (key_id,))
    return cursor.rowcount > 0


def _key_json(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    rotating_until = r.get("previous_valid_until")
    if rotating_until is not None and rotating_until <= now:
        rotating_until = None
    if r.get("revoked_at") is not None:
        key_state = "revoked"
    elif r["expires_at"] is not None and r["expires_at"] <= now:
        key_state = "expired"
    elif not r["enabled"]:
        key_state = "disabled"
    elif rotating_until is not None:
        key_state = "rotating"
    else:
        key_state = "active"
    return {"id": r["id"], "name": r["name"], "key_prefix": r["key_prefix"], "enabled": r["enabled"],
            "allowed_models": r["allowed_models"], "limits": r["limits"], "budget": r["budget"],
            "mcp_access": r.get("mcp_access"), "expires_at": _iso(r["expires_at"]),
            "created_at": r["created_at"].isoformat(),
            "team": r.get("team_id") or "default", "person": r.get("person_id"),
            "person_email": r.get("person_email"), "state": key_state,
            "revoked_at": _iso(r.get("revoked_at")), "rotating_until": _iso(rotating_until)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_KEYS_SELECT = ("SELECT k.*, p.email AS person_email, now() AS db_now FROM api_keys k "
                "LEFT JOIN people p ON p.id = k.person_id")


async def get_key(conn: AsyncConnection[Any], key_id: str) -> dict[str, Any] | None:
    """The key by id (or name), as list_keys shows it."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(_KEYS_SELECT + " WHERE k.id = %s OR k.name = %s", (key_id, key_id))
    row = await cursor.fetchone()
    return _key_json(row, row["db_now"]) if row else None


async def list_keys(conn: AsyncConnection[Any], team_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every key (only those of `team_ids` when given), oldest first; never a secret."""
    cursor = conn.cursor(row_factory=dict_row)
    where, params = (" WHERE k.team_id = ANY(%s)", (team_ids,)) if team_ids is not None else ("", ())
    await cursor.execute(_KEYS_SELECT + where + " ORDER BY k.created_at, k.name", params)
    return [_key_json(r, r["db_now"]) for r in await cursor.fetchall()]


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
    mcp_servers: list[dict[str, Any]]


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
    await cursor.execute("SELECT * FROM mcp_servers ORDER BY id")
    mcp_servers = await cursor.fetchall()
    return ConfigRows(providers=providers, connections=connections, keys=keys, aliases=aliases,
                      combos=combos, routing_settings=routing, teams=teams, mcp_servers=mcp_servers)


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
    transaction. Teams are upserted, and only the teams not named are deleted (deleting one
    cascades to its management tokens); a key's person is kept only if that person exists here."""
    teams = tables.get("teams")
    plain = {table: rows for table, rows in tables.items() if table != "teams"}
    await database_repo.delete_all(conn, list(plain))
    if teams is not None:
        await teams_repo.delete_except(conn, [row["id"] for row in teams])
        await teams_repo.upsert_rows(conn, teams)
    for table, rows in plain.items():
        if not rows:
            continue
        if table == "api_keys":
            rows = await _with_local_people(conn, rows)
        columns = await database_repo.columns(conn, table)
        unknown = sorted({k for row in rows for k in row} - set(columns))
        if unknown:
            raise UnknownColumns(f"{table}: columns {unknown} do not exist here (upgrade this deployment)")
        await database_repo.insert_rows(conn, table, columns, rows)


async def _with_local_people(conn: AsyncConnection[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    named = {row["person_id"] for row in rows if row.get("person_id")}
    if not named:
        return rows
    found = await (await conn.execute("SELECT id FROM people WHERE id = ANY(%s)", (list(named),))).fetchall()
    local = {row[0] for row in found}
    return [row if not row.get("person_id") or row["person_id"] in local else {**row, "person_id": None}
            for row in rows]
