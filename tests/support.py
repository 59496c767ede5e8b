"""Helpers shared by the integration and end-to-end tests: throwaway databases and stacks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import make_conninfo

from omniroute import secrets
from omniroute.devstack.stack import Ports, Stack, free_port
from omniroute.settings import Settings
from omniroute.store import migrate
from tests import log_scan
from tests.redis_keys import claim_env, delete_env_keys

BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/omniroute")
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def temp_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards."""
    name = unique_name("omniroute_t_")
    url = make_conninfo(BASE_DATABASE_URL, dbname=name)
    migrate.migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(make_conninfo(BASE_DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_settings(database_url: str, env: str | None = None) -> Settings:
    # Every port and address its own, never the defaults: a `make run` on this machine listens
    # there, and an in-process service must not reach it (nor find its port taken).
    ports = Ports.free()
    env = env or unique_name("t")
    claim_env(env)   # a run killed before its teardown: the next session removes its keys
    return Settings(env=env, database_url=database_url, redis_url=REDIS_URL,
                    nats_url=NATS_URL, master_key=secrets.generate_master_key(),
                    edge_port=ports.edge, admin_port=ports.admin, router_port=ports.router,
                    executor_port=ports.executor, accounting_port=ports.accounting,
                    analytics_port=ports.analytics, metrics_port=free_port(),
                    router_addr=f"127.0.0.1:{ports.router}", executor_addr=f"127.0.0.1:{ports.executor}",
                    admin_url=f"http://127.0.0.1:{ports.admin}",
                    edge_health_url=f"http://127.0.0.1:{ports.edge}/healthz",
                    accounting_health_url=f"http://127.0.0.1:{ports.accounting}/healthz",
                    analytics_health_url=f"http://127.0.0.1:{ports.analytics}/healthz")


async def delete_stream(settings: Settings) -> None:
    client = await nats.connect(settings.nats_url)
    try:
        with contextlib.suppress(Exception):
            await client.jetstream().delete_stream(settings.stream_name)
    finally:
        await client.close()


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `check()` returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Gateway:
    """A running stack for end-to-end tests."""

    stack: Stack
    settings: Settings
    api_key: str
    admin_password: str
    log_dir: Path
    trace_file: Path

    @property
    def url(self) -> str:
        return self.stack.url

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.database_url) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def admin_client(self) -> httpx.Client:
        """A management API session on the public port: logged in, sending the CSRF token that
        cookie-authenticated writes need."""
        session = httpx.Client(base_url=self.url, timeout=30)
        login = session.post("/api/auth/login", json={"password": self.admin_password})
        assert login.status_code == 200 and "auth_token" in session.cookies, login.text
        session.headers["X-CSRF-Token"] = login.json()["csrfToken"]
        return session

    def usage_row(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            with psycopg.connect(self.settings.database_url, row_factory=psycopg.rows.dict_row) as conn:
                return conn.execute("SELECT * FROM usage WHERE request_id = %s", (request_id,)).fetchone()
        row: dict[str, Any] = wait_for(find, timeout)
        return row


@contextlib.contextmanager
def running_gateway(tmp_dir: Path, config: dict[str, Any], *, api_key: str,
                    extra_env: dict[str, str] | None = None) -> Iterator[Gateway]:
    with temp_database() as database_url:
        settings = test_settings(database_url)
        config_path = tmp_dir / "omniroute.yaml"
        config_path.write_text(yaml.safe_dump(config))
        trace_file = tmp_dir / "spans.jsonl"
        password = "test-admin-password"
        env = {"OMNIROUTE_ENV": settings.env, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "NATS_URL": NATS_URL, "OMNIROUTE_MASTER_KEY": settings.master_key,
               "OMNIROUTE_CONFIG": str(config_path), "REQUIRE_API_KEY": "true",
               "INITIAL_PASSWORD": password, "OMNIROUTE_TRACE_FILE": str(trace_file),
               "OMNIROUTE_CONFIG_REFRESH_S": "30", "OMNIROUTE_BACKUP_DIR": str(tmp_dir / "backups"),
               # The mock upstreams listen on 127.0.0.1, which omniroute.ssrf refuses by default.
               "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "true",
               **(extra_env or {})}
        stack = Stack(ports=Ports.free(), env=env, log_dir=tmp_dir / "logs")
        # Every service's log is scanned for unexpected exceptions: after each test (the
        # autouse fixture of tests/log_scan.py), once started, and once stopped.
        with log_scan.watched(tmp_dir / "logs", "gateway") as logs:
            try:
                stack.start(timeout=60)
                logs.assert_clean("while starting")
                yield Gateway(stack=stack, settings=settings, api_key=api_key, admin_password=password,
                              log_dir=tmp_dir / "logs", trace_file=trace_file)
            finally:
                stack.stop()
                asyncio.run(delete_stream(settings))
                delete_env_keys(REDIS_URL, settings.env)
        logs.assert_clean("after the last test, or while stopping")
