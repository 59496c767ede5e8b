"""The admin app in-process for the test_admin_* modules: its real lifespan (Postgres, Redis,
NATS) on a temp database, driven through httpx's ASGI transport."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from omniroute.settings import Settings
from omniroute_admin.app import create_app
from tests.redis_keys import delete_env_keys_async
from tests.support import delete_stream, temp_database, test_settings

PASSWORD = "initial-pass-123"


@dataclasses.dataclass
class Admin:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    def anonymous(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A fresh client (no cookies) that the admin sees as coming from `ip`."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://admin.test",
                                 headers={"x-omniroute-client-ip": ip})

    async def logged_in(self, password: str = PASSWORD, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        client = self.anonymous(ip)
        answer = await client.post("/api/auth/login", json={"password": password})
        assert answer.status_code == 200, answer.text
        client.headers["x-csrf-token"] = answer.json()["csrfToken"]
        return client


@contextlib.asynccontextmanager
async def running_admin(tmp: Path, **overrides: Any) -> AsyncIterator[Admin]:
    with temp_database() as url:
        settings = dataclasses.replace(test_settings(url), initial_password=PASSWORD,
                                       backup_dir=str(tmp / "backups"), **overrides)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            admin = Admin(app=app, client=httpx.AsyncClient(), settings=settings)
            admin.client = await admin.logged_in()
            try:
                yield admin
            finally:
                await admin.client.aclose()
        await delete_stream(settings)
        await delete_env_keys_async(settings.redis_url, settings.env)
