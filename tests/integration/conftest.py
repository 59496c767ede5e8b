"""Integration fixtures: a migrated database of its own and a settings namespace per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from omniroute.settings import Settings
from tests.redis_keys import delete_env_keys_async
from tests.support import delete_stream, temp_database, test_settings


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with temp_database() as url:
        yield url


@pytest.fixture
async def settings(database_url: str) -> AsyncIterator[Settings]:
    value = test_settings(database_url)
    yield value
    await delete_stream(value)
    await delete_env_keys_async(value.redis_url, value.env)


@pytest.fixture
async def nats_client(settings: Settings) -> AsyncIterator[Client]:
    client = await nats.connect(settings.nats_url)
    yield client
    await client.close()
