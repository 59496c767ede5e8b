"""The config file applied at the admin's start heals what it reconfigures: a changed base_url or
api_key clears the connection's cooldowns, model locks and breaker; the same file applied again
(every start gives every key) keeps them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import redis.asyncio as aioredis
import yaml

from omniroute.config.routing_spec import ResilienceProfile
from omniroute.settings import Settings
from omniroute.shared_state.breaker import Breakers
from omniroute.shared_state.cooldown import Cooldowns
from omniroute_admin.app import create_app

CONNECTION, MODEL = "filed:main", "gpt-4o"


def write(path: Path, base_url: str, api_key: str) -> None:
    path.write_text(yaml.safe_dump({"providers": [{
        "id": "filed", "type": "openai-compatible", "base_url": base_url, "models": [MODEL],
        "connections": [{"name": "main", "api_key": api_key}]}]}))


async def start_with(settings: Settings, path: Path, base_url: str, api_key: str) -> None:
    write(path, base_url, api_key)
    app = create_app(dataclasses.replace(settings, config_file=str(path), initial_password="pw-123456"))
    async with app.router.lifespan_context(app):
        pass


async def hurt(client: aioredis.Redis, env: str) -> None:
    await Cooldowns(client, env).lock_model(CONNECTION, MODEL, 3600)
    await Breakers(client, env).record(CONNECTION, False, ResilienceProfile(failure_threshold=1,
                                                                           degraded_threshold=1))


async def marked(client: aioredis.Redis, env: str) -> tuple[bool, str]:
    locked = CONNECTION in await Cooldowns(client, env).locked_models([CONNECTION], MODEL)
    return locked, (await Breakers(client, env).view([CONNECTION]))[CONNECTION].state


async def test_a_changed_file_heals_what_it_changes(settings: Settings, tmp_path: Path) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    path = tmp_path / "omniroute.yaml"
    try:
        await start_with(settings, path, "https://wrong.example.com/v1", "sk-one")
        await hurt(client, settings.env)
        await start_with(settings, path, "https://wrong.example.com/v1", "sk-one")   # the same file
        assert await marked(client, settings.env) == (True, "OPEN")
        await start_with(settings, path, "https://right.example.com/v1", "sk-one")   # base_url fixed
        assert await marked(client, settings.env) == (False, "CLOSED")
        await hurt(client, settings.env)
        await start_with(settings, path, "https://right.example.com/v1", "sk-two")   # a new key
        assert await marked(client, settings.env) == (False, "CLOSED")
    finally:
        await client.aclose()
