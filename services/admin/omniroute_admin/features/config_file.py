"""Applying the declarative OMNIROUTE_CONFIG file at start: idempotent upserts, one transaction."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from omniroute.config.spec import ConfigFile
from omniroute.store import config_repo
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
    async with state.pool.connection() as conn, conn.transaction():
        for provider in config.providers:
            await config_repo.upsert_provider(conn, provider, state.crypto)
        for key in config.keys:
            _, clear = await config_repo.upsert_key(conn, key)
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
    log.info("applied config file: %d providers, %d keys", len(config.providers), len(config.keys))
    return generated
