"""Teams and key ownership in the declarative config file (applied idempotently, teams before the
keys that name them) and in configuration sync (teams travel; a kept team is not deleted, so its
management tokens survive; a key's person is kept only where that person exists)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from omniroute.config.spec import ConfigFile
from omniroute.secrets import Crypto
from omniroute.store import people_repo
from omniroute_admin.features import config_file, sync_doc
from tests.integration.admin_app import Admin, running_admin
from tests.support import temp_database

pytestmark = pytest.mark.xdist_group("teams-config-sync")

DOCUMENT: dict[str, Any] = {
    "teams": [{"id": "platform", "name": "Platform", "allowed_models": ["a/x", "a/y"],
               "limits": {"rpm": 100, "concurrency": 5},
               "budget": {"limit_usd": 50, "period": "monthly", "alert_at": [0.8]}},
              {"id": "ml"}],
    "people": [{"email": "owner-of-key@example.com", "role": "viewer"}],
    "keys": [{"name": "ci", "key": "sk-omni-config-ci-00000000", "team": "platform",
              "person": "owner-of-key@example.com", "limits": {"rpm": 10}},
             {"name": "plain", "key": "sk-omni-config-plain-0000000"}],
}


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("teams-config")) as running:
        yield running


async def _rows(admin: Admin, query: str) -> list[tuple[Any, ...]]:
    async with admin.app.state.admin.pool.connection() as conn:
        return list(await (await conn.execute(query)).fetchall())


async def test_config_file_declares_teams_and_key_owners_idempotently(admin: Admin) -> None:
    state = admin.app.state.admin
    await config_file.apply(state, ConfigFile.model_validate(DOCUMENT))
    first = await _rows(admin, "SELECT id, name, allowed_models, limits, budget, updated_at FROM teams ORDER BY id")
    await config_file.apply(state, ConfigFile.model_validate(DOCUMENT))
    assert await _rows(admin, "SELECT id, name, allowed_models, limits, budget, updated_at FROM teams "
                              "ORDER BY id") == first   # unchanged, not even touched
    teams = {row[0]: row[1:5] for row in first}
    assert teams["platform"] == ("Platform", ["a/x", "a/y"], {"rpm": 100, "concurrency": 5},
                                 {"limit": 50.0, "period": "monthly", "alertAt": [0.8]})
    assert teams["ml"] == ("ml", None, {}, None) and "default" in teams
    keys = {k["name"]: k for k in (await admin.client.get("/api/keys")).json()["keys"]}
    assert keys["ci"]["team"] == "platform" and keys["ci"]["person_email"] == "owner-of-key@example.com"
    assert keys["plain"]["team"] == "default" and keys["plain"]["person"] is None
    assert len([k for k in keys if k in ("ci", "plain")]) == 2

    # The file is the truth for what it names: moving a key there moves it.
    moved = {**DOCUMENT, "keys": [{**DOCUMENT["keys"][0], "team": "ml", "person": None}]}
    await config_file.apply(state, ConfigFile.model_validate(moved))
    ci = (await admin.client.get("/api/keys/ci")).json()
    assert ci["team"] == "ml" and ci["person"] is None

    for wrong, said in [({"keys": [{"name": "lost", "team": "nowhere"}]}, "No team 'nowhere'"),
                        ({"keys": [{"name": "lost", "person": "ghost@example.com"}]}, "ghost@example.com"),
                        ({"teams": [{"id": "dup", "name": "Platform"}]}, "another team is named 'Platform'")]:
        with pytest.raises(SystemExit, match=said):
            await config_file.apply(state, ConfigFile.model_validate(wrong))
    assert all(k["name"] != "lost" for k in (await admin.client.get("/api/keys")).json()["keys"])


async def test_sync_carries_teams_and_keeps_the_receivers_tokens(admin: Admin) -> None:
    await config_file.apply(admin.app.state.admin, ConfigFile.model_validate(DOCUMENT))
    async with admin.app.state.admin.pool.connection() as conn:
        tables = await sync_doc.read_local(conn)
    assert next(iter(tables)) == "teams"   # parents first: keys name their team
    token = "sync-token-for-the-teams-test"
    wire = sync_doc.for_transport(tables, admin.app.state.admin.crypto, token, sync_doc.etag(tables))

    with temp_database() as receiver_url:
        crypto = Crypto(admin.settings.master_key)
        async with await psycopg.AsyncConnection.connect(receiver_url) as conn:
            # The receiver has a team the document also names, with a management token scoped to
            # it, and a team the document does not name.
            await conn.execute("INSERT INTO teams (id, name) VALUES ('platform', 'old name'), ('gone', 'gone')")
            await conn.execute(
                "INSERT INTO management_tokens (id, name, token_hash, token_prefix, role, team_id) "
                "VALUES ('mt1', 'ci', 'hash-1', 'omr_mt_x', 'team_admin', 'platform')")
            async with conn.transaction():
                await sync_doc.replace_local(conn, sync_doc.from_transport(wire, crypto, token))
            teams = await (await conn.execute(
                "SELECT id, name, limits FROM teams ORDER BY id")).fetchall()
            keys = await (await conn.execute(
                "SELECT name, team_id, person_id FROM api_keys WHERE name IN ('ci', 'plain') ORDER BY name")).fetchall()
            tokens = await (await conn.execute("SELECT id, team_id FROM management_tokens")).fetchall()
            assert await people_repo.by_email(conn, "owner-of-key@example.com") is None   # people do not travel
        assert [t[0] for t in teams] == ["default", "ml", "platform"]
        assert teams[2][1:] == ("Platform", {"rpm": 100, "concurrency": 5})
        # The key's person does not exist on the receiver: the key comes without one.
        assert [tuple(k) for k in keys] == [("ci", "platform", None), ("plain", "default", None)]
        assert [tuple(t) for t in tokens] == [("mt1", "platform")]

    # A document from a deployment before teams (no "teams" table) is still accepted.
    older = {**wire, "tables": {k: v for k, v in wire["tables"].items() if k != "teams"}}
    older["tables"]["api_keys"] = [{k: v for k, v in row.items()
                                    if k not in ("team_id", "person_id", "previous_key_hash",
                                                 "previous_valid_until", "revoked_at")}
                                   for row in older["tables"]["api_keys"]]
    with temp_database() as receiver_url:
        async with await psycopg.AsyncConnection.connect(receiver_url) as conn:
            async with conn.transaction():
                await sync_doc.replace_local(conn, sync_doc.from_transport(older, crypto, token))
            rows = await (await conn.execute("SELECT DISTINCT team_id FROM api_keys")).fetchall()
        assert [tuple(r) for r in rows] == [("default",)]
