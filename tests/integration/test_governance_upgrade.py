"""Upgrading a database from 0010 to 0011 (teams, people, the key lifecycle): every key stays, in
the team "default", with its hash, limits, budget and expiry, and still authenticates; every usage
row stays, a keyed one now counted for the team "default"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from omniroute.config.snapshot import load_snapshot
from omniroute.secrets import hash_api_key
from omniroute.store import migrate
from tests.support import BASE_DATABASE_URL, unique_name

BEFORE = "0010_pricing_units.sql"
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
KEYS = [  # id, name, clear key, limits, budget, expires_at, enabled
    ("key_old_a", "old-a", "sk-omni-upgrade-a-000000000000", {"rpm": 10}, {"limit": 5, "period": "daily"}, None, True),
    ("key_old_b", "old-b", "sk-omni-upgrade-b-000000000000", {}, None, EXPIRY, True),
    ("key_old_c", "old-c", "sk-omni-upgrade-c-000000000000", {"concurrency": 2}, None, None, False),
]


@contextlib.contextmanager
def database_at(last: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new database migrated up to `last` only (the migrations after it held back)."""
    url = make_conninfo(BASE_DATABASE_URL, dbname=unique_name("omniroute_up_"))
    every = migrate.migration_files()
    with monkeypatch.context() as patched:
        patched.setattr(migrate, "migration_files", lambda: [(n, t) for n, t in every if n <= last])
        assert migrate.migrate(url)[-1] == last
    try:
        yield url
    finally:
        with psycopg.connect(make_conninfo(BASE_DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(str(psycopg.conninfo.conninfo_to_dict(url)["dbname"]))))


async def test_keys_and_usage_survive_the_upgrade_to_teams(monkeypatch: pytest.MonkeyPatch) -> None:
    with database_at(BEFORE, monkeypatch) as url:
        started = datetime.now(UTC) - timedelta(hours=1)
        with psycopg.connect(url) as conn:
            for key_id, name, clear, limits, budget, expires, enabled in KEYS:
                conn.execute(
                    "INSERT INTO api_keys (id, name, key_hash, key_prefix, enabled, limits, budget, expires_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (key_id, name, hash_api_key(clear), clear[:12], enabled, Jsonb(limits),
                     Jsonb(budget) if budget else None, expires))
            for index in range(30):
                key_id = KEYS[index % 3][0] if index % 10 else ""   # some rows of no key
                conn.execute(
                    "INSERT INTO usage (request_id, key_id, provider, model, status, input_tokens, output_tokens,"
                    " latency_ms, cost_usd, started_at) VALUES (%s, %s, 'p', 'm', 200, %s, 1, 10, %s, %s)",
                    (f"req-{index}", key_id, index, index / 100, started + timedelta(seconds=index)))
            before_usage = conn.execute(
                "SELECT request_id, key_id, input_tokens, cost_usd FROM usage ORDER BY request_id").fetchall()

        applied = migrate.migrate(url)
        assert applied[0] == "0011_governance.sql"

        with psycopg.connect(url) as conn:
            keys = conn.execute("SELECT id, name, key_hash, limits, budget, expires_at, enabled, team_id, "
                                "person_id, revoked_at, previous_key_hash FROM api_keys ORDER BY id").fetchall()
            assert keys == [(key_id, name, hash_api_key(clear), limits, budget, expires, enabled, "default",
                             None, None, None)
                            for key_id, name, clear, limits, budget, expires, enabled in KEYS]
            after_usage = conn.execute(
                "SELECT request_id, key_id, input_tokens, cost_usd FROM usage ORDER BY request_id").fetchall()
            assert after_usage == before_usage
            teams = conn.execute("SELECT team_id, count(*) FROM usage GROUP BY 1 ORDER BY 1").fetchall()
            assert teams == [("", 3), ("default", 27)]
            assert conn.execute("SELECT id FROM teams").fetchall() == [("default",)]

        snapshot = await load_snapshot(url, None)
        assert set(snapshot.teams) == {"default"}
        for key_id, _, clear, limits, budget, expires, enabled in KEYS:
            key = snapshot.keys_by_hash[hash_api_key(clear)]
            assert (key.id, key.team_id, key.limits, key.budget, key.expires_at) == (
                key_id, "default", limits, budget, expires)
            assert key.usable() is enabled
