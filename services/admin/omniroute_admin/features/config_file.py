"""Applying the declarative OMNIROUTE_CONFIG file at start: idempotent upserts, one transaction."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from psycopg import AsyncConnection
from pydantic import ValidationError

from omniroute.config.spec import ConfigFile, ProviderSpec
from omniroute.shared_state import mcp_health
from omniroute.store import config_repo, mcp_servers_repo, teams_repo
from omniroute_admin.features import connection_health
from omniroute_admin.services import people
from omniroute_admin.state import AdminState

log = logging.getLogger("omniroute.admin.config")


def parse(path: str) -> ConfigFile:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"cannot read OMNIROUTE_CONFIG {path}: {exc}") from exc
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise SystemExit(f"OMNIROUTE_CONFIG {path} is not valid:\n{exc}") from exc


async def apply(state: AdminState, config: ConfigFile) -> dict[str, str]:
    """Upsert everything the file names; returns the keys generated now (name → clear key)."""
    generated: dict[str, str] = {}
    reconfigured: list[str] = []
    async with state.pool.connection() as conn, conn.transaction():
        for provider in config.providers:
            before = await config_repo.list_providers(conn, state.crypto, provider.id)
            if before:
                reconfigured += connection_health.reconfigured(before[0], await _new_keys_only(conn, state, provider))
            await config_repo.upsert_provider(conn, provider, state.crypto)
        for server in config.mcp_servers:   # after the connections they may name
            try:
                await mcp_servers_repo.upsert(conn, server, state.crypto)
            except mcp_servers_repo.UnknownConnection as exc:
                raise SystemExit(f"OMNIROUTE_CONFIG: MCP server {server.id!r}: {exc}") from None
        for team in config.teams:   # before the keys that name them
            if await teams_repo.name_taken(conn, team.display_name, team.id):
                raise SystemExit(f"OMNIROUTE_CONFIG: team {team.id!r}: another team is named {team.display_name!r}")
            await teams_repo.upsert(conn, team)
        for person in config.people:   # after the teams they manage, before keys naming them
            await people.declare(conn, person)
        for key in config.keys:
            try:
                _, clear = await config_repo.upsert_key(conn, key)
            except config_repo.UnknownOwner as exc:
                raise SystemExit(f"OMNIROUTE_CONFIG: key {key.name!r}: {exc}") from None
            if clear:
                generated[key.name] = clear
        for alias, target in config.aliases.items():
            await config_repo.upsert_alias(conn, alias, target)
        for combo in config.combos:
            await config_repo.upsert_combo(conn, combo)
        if config.routing is not None:
            await config_repo.apply_routing_settings(conn, config.routing)
    for name, clear in generated.items():
        # Shown once, at creation: only its hash is stored.
        print(f"OmniRoute API key '{name}' created: {clear}", flush=True)
    await state.announce("config-file")
    await connection_health.forget(state, reconfigured)
    if config.mcp_servers:   # what they earned before this start's configuration says nothing now
        await mcp_health.forget(state.redis, state.settings.env, [server.id for server in config.mcp_servers])
    log.info("applied config file: %d providers, %d MCP servers, %d teams, %d people, %d keys",
             len(config.providers), len(config.mcp_servers), len(config.teams), len(config.people),
             len(config.keys))
    return generated


async def _new_keys_only(conn: AsyncConnection[Any], state: AdminState, spec: ProviderSpec) -> ProviderSpec:
    """`spec` without the api_keys its connections already have: the file gives every key at
    every start, and only a different one is a new credential."""
    connections = []
    for connection in spec.connections:
        stored = await config_repo.connection_credential(conn, spec.id, connection.name) if connection.api_key else None
        same = stored is not None and stored[1] is not None and state.crypto.decrypt(stored[1]) == connection.api_key
        connections.append(connection.model_copy(update={"api_key": None}) if same else connection)
    return spec.model_copy(update={"connections": connections})
