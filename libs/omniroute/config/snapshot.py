"""The in-memory view of the configuration that the hot path reads (never Postgres)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from omniroute.catalog import provider_type
from omniroute.config.routing_spec import ComboSpec, RoutingSettings
from omniroute.secrets import Crypto
from omniroute.store import admin_settings_repo, catalog_repo, config_repo, pricing_repo
from omniroute.store.pricing import PriceBook

log = logging.getLogger("omniroute.config")


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    provider_id: str
    name: str
    api_key: str          # clear text only in the router's memory; "" where not decrypted
    priority: int
    enabled: bool
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    type: str
    family: str
    base_url: str
    models: tuple[str, ...]
    enabled: bool
    settings: dict[str, Any]
    connections: tuple[Connection, ...]


DEFAULT_TEAM = "default"


@dataclass(frozen=True, slots=True)
class Team:
    """A team: its budget, rate limits (shared by every key of the team, across replicas) and
    allowed models. A key's own settings narrow the team's, never widen them."""

    id: str
    name: str
    allowed_models: tuple[str, ...] | None
    limits: dict[str, Any]
    budget: dict[str, Any] | None
    # MCP tools the team's keys may use at most: server id → ("*",) or tool names; None = none.
    mcp_access: dict[str, tuple[str, ...]] | None = None


@dataclass(frozen=True, slots=True)
class McpServer:
    """An upstream MCP tool server (issue 21). Credentials are clear only in the router's memory
    (crypto given); the edge's snapshot keeps them empty."""

    id: str
    name: str
    transport: str                      # "http" (Streamable HTTP at url) or "stdio" (command)
    url: str
    command: tuple[str, ...]
    headers: dict[str, str]             # injected on every upstream request
    env: dict[str, str]                 # a stdio server's environment
    oauth_connection_id: str
    timeout_s: float
    price_per_call_usd: str             # decimal string
    enabled: bool


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    enabled: bool
    allowed_models: tuple[str, ...] | None
    limits: dict[str, Any]
    budget: dict[str, Any] | None
    expires_at: datetime | None
    team_id: str = DEFAULT_TEAM
    person_id: str = ""
    revoked_at: datetime | None = None
    # Set on the entry found by the key's previous secret (a rotation's grace period): that
    # secret is refused from this moment on, without waiting for a reload.
    grace_until: datetime | None = None
    # MCP tools this key may use, narrowing its team's (None = the team's).
    mcp_access: dict[str, tuple[str, ...]] | None = None

    def refusal(self, now: datetime | None = None) -> str | None:
        """Why this key may not be used now (None: it may): key_rotated (a previous secret past
        its grace), key_revoked, key_expired, key_disabled. Times are checked at the call, so a
        grace or an expiry ends without waiting for a reload."""
        moment = now or datetime.now(UTC)
        if self.grace_until is not None and self.grace_until <= moment:
            return "key_rotated"
        if self.revoked_at is not None:
            return "key_revoked"
        if self.expires_at is not None and self.expires_at <= moment:
            return "key_expired"
        if not self.enabled:
            return "key_disabled"
        return None

    def usable(self, now: datetime | None = None) -> bool:
        return self.refusal(now) is None


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    providers: dict[str, Provider] = field(default_factory=dict)
    keys_by_hash: dict[str, ApiKey] = field(default_factory=dict)   # current and in-grace secrets
    keys_by_id: dict[str, ApiKey] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)
    loaded_at: float = 0.0
    aliases: dict[str, str] = field(default_factory=dict)
    combos: dict[str, ComboSpec] = field(default_factory=dict)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    # admin_settings (general, ip_filter, proxy, …): name → JSON document; no clear secrets.
    settings: dict[str, Any] = field(default_factory=dict)
    # Models added through /api/provider-models (table provider_models): provider id →
    # ((kind, model), …), kinds as there (chat, embedding, image, audio). Listed like declared ones.
    custom_models: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The pricing table (/api/pricing): the router's cost-optimized combos order by it, without
    # a query per request; an edit announces config.changed like any other.
    prices: PriceBook = field(default_factory=PriceBook)


async def load_snapshot(database_url: str, crypto: Crypto | None) -> ConfigSnapshot:
    """Read the whole configuration. `crypto` None: credentials stay encrypted (edge)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await config_repo.config_rows(conn)
        admin_settings = await admin_settings_repo.load_all(conn)
        custom_rows = await catalog_repo.custom_models(conn)
        prices = await pricing_repo.load_book(conn)

    connections: dict[str, list[Connection]] = {}
    for row in rows.connections:
        api_key, usable = _credential(row, crypto)
        connections.setdefault(row["provider_id"], []).append(Connection(
            id=row["id"], provider_id=row["provider_id"], name=row["name"], api_key=api_key,
            priority=row["priority"], enabled=row["enabled"] and usable, settings=row["settings"] or {}))

    providers: dict[str, Provider] = {}
    for row in rows.providers:
        kind = provider_type(row["type"])
        family = kind.family if kind else "openai"
        providers[row["id"]] = Provider(
            id=row["id"], type=row["type"], family=family,
            base_url=(row["base_url"] or (kind.base_url if kind else "")).rstrip("/"),
            models=tuple(row["models"] or ()), enabled=row["enabled"],
            settings=row["settings"] or {}, connections=tuple(connections.get(row["id"], ())))

    keys_by_hash: dict[str, ApiKey] = {}
    keys_by_id: dict[str, ApiKey] = {}
    for row in rows.keys:
        allowed = row["allowed_models"]
        key = ApiKey(id=row["id"], name=row["name"], enabled=row["enabled"],
                     allowed_models=tuple(allowed) if allowed is not None else None,
                     limits=row["limits"] or {}, budget=row["budget"], expires_at=row["expires_at"],
                     team_id=row.get("team_id") or DEFAULT_TEAM, person_id=row.get("person_id") or "",
                     revoked_at=row.get("revoked_at"), mcp_access=_mcp_access(row.get("mcp_access")))
        keys_by_hash[row["key_hash"]] = key
        keys_by_id[row["id"]] = key
        previous, until = row.get("previous_key_hash"), row.get("previous_valid_until")
        if previous and until is not None and until > datetime.now(UTC):
            keys_by_hash[previous] = replace(key, grace_until=until)
    teams = {row["id"]: Team(id=row["id"], name=row["name"],
                             allowed_models=tuple(row["allowed_models"]) if row["allowed_models"] is not None else None,
                             limits=row["limits"] or {}, budget=row["budget"],
                             mcp_access=_mcp_access(row.get("mcp_access")))
             for row in rows.teams}
    mcp_servers = {row["id"]: _mcp_server(row, crypto) for row in rows.mcp_servers}
    return ConfigSnapshot(providers=providers, keys_by_hash=keys_by_hash, keys_by_id=keys_by_id, teams=teams,
                          mcp_servers=mcp_servers,
                          loaded_at=time.time(),
                          aliases=rows.aliases,
                          combos={name: ComboSpec.model_validate(spec) for name, spec in rows.combos.items()},
                          routing=RoutingSettings.from_rows(rows.routing_settings),
                          settings=admin_settings, custom_models=_custom_models(custom_rows),
                          prices=prices)


def _mcp_access(value: Any) -> dict[str, tuple[str, ...]] | None:
    """{server: ["*"] | [tools]} as stored → tuples; None stays None (a key: its team's)."""
    if not isinstance(value, dict):
        return None
    return {str(server): tuple(str(t) for t in tools) for server, tools in value.items()
            if isinstance(tools, list)}


def _mcp_server(row: dict[str, Any], crypto: Crypto | None) -> McpServer:
    headers: dict[str, str] = {}
    env: dict[str, str] = {}
    usable = True
    if crypto is not None:
        try:
            headers = orjson.loads(crypto.decrypt(row["headers_enc"])) if row["headers_enc"] else {}
            env = orjson.loads(crypto.decrypt(row["env_enc"])) if row["env_enc"] else {}
        except ValueError:
            log.error("MCP server %s: its credentials cannot be decrypted with this master key; "
                      "the server is disabled", row["id"])
            usable = False
    return McpServer(id=row["id"], name=row["name"], transport=row["transport"], url=row["url"] or "",
                     command=tuple(row["command"] or ()), headers=headers, env=env,
                     oauth_connection_id=row["oauth_connection_id"] or "", timeout_s=float(row["timeout_s"]),
                     price_per_call_usd=str(row["price_per_call_usd"]), enabled=row["enabled"] and usable)


def _custom_models(rows: list[tuple[str, str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    """(provider id, model, kind) rows → provider id → ((kind, model), …)."""
    by_provider: dict[str, list[tuple[str, str]]] = {}
    for provider_id, model, kind in rows:
        by_provider.setdefault(provider_id, []).append((kind, model))
    return {provider_id: tuple(models) for provider_id, models in by_provider.items()}


def _credential(row: dict[str, Any], crypto: Crypto | None) -> tuple[str, bool]:
    """(clear credential, usable?). A credential that this master key cannot read disables its
    connection rather than the whole snapshot: the other connections keep serving."""
    secret = row["api_key_enc"]
    if crypto is None or not secret:
        return "", True
    try:
        return crypto.decrypt(secret), True
    except ValueError:
        log.error("connection %s: its credential cannot be decrypted with this master key; "
                  "the connection is skipped", row["id"])
        return "", False
