"""Backups: create / list / restore / delete, export / import, scheduled with retention; a backup
→ wipe → restore round trip restores every table; a bad archive changes nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from psycopg import sql

from omniroute_admin.features import backups, maintenance
from tests.integration.admin_app import PASSWORD, Admin, running_admin


@pytest.fixture
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("admin")) as running:
        yield running


async def _seed(admin: Admin) -> str:
    assert (await admin.client.post("/api/providers", json={
        "id": "bk", "type": "openai", "models": ["gpt-4o"],
        "connections": [{"name": "main", "api_key": "sk-backup-secret-0001"}]})).status_code == 201
    key = (await admin.client.post("/api/keys", json={"name": "bk-key"})).json()["key"]
    await admin.client.put("/api/settings", json={"instance_name": "Before backup"})
    async with admin.app.state.admin.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO usage (request_id, key_id, provider, model, status, input_tokens, "
            "output_tokens, latency_ms, started_at) VALUES ('req-bk-1', 'k', 'bk', 'gpt-4o', 200, "
            "10, 20, 123.5, now()), ('req-bk-2', 'k', 'bk', 'gpt-4o', 502, 1, 0, 9, now())")
    return str(key)


async def _contents(admin: Admin) -> dict[str, list[Any]]:
    """Every table's rows (sorted JSON), the schema's migrations table aside."""
    out: dict[str, list[Any]] = {}
    async with admin.app.state.admin.pool.connection() as conn:
        for table in await backups.tables_in_order(conn):
            rows = await (await conn.execute(sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(
                sql.Identifier(table)))).fetchall()
            out[table] = sorted(r[0] for r in rows)
    return out


async def test_backup_wipe_restore_round_trip_restores_everything(admin: Admin) -> None:
    await _seed(admin)
    before = await _contents(admin)
    assert before["connections"] and before["usage"] and before["admin_password"] and before["audit_log"]
    created = await admin.client.put("/api/db-backups")
    assert created.status_code == 201 and created.json()["kind"] == "manual"
    listed = (await admin.client.get("/api/db-backups")).json()["backups"]
    assert created.json()["id"] in [b["id"] for b in listed]

    async with admin.app.state.admin.pool.connection() as conn:   # the disaster
        tables = [t for t in await backups.tables_in_order(conn)]
        await conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in tables)))
    # The sessions live in Redis; the wiped password table does not matter to this session.
    restored = await admin.client.post("/api/db-backups", json={"id": created.json()["id"]})
    assert restored.status_code == 200, restored.text
    assert restored.json()["rows"]["usage"] == 2 and restored.json()["safety_backup"]
    after = await _contents(admin)
    for table, rows in before.items():
        if table == "audit_log":
            assert set(rows) <= set(after[table])   # plus the backups.* rows written since
        else:
            assert after[table] == rows, table
    # Sequences continue after the restored ids.
    await admin.client.put("/api/settings", json={"instance_name": "After restore"})
    log = (await admin.client.get("/api/compliance/audit-log", params={"limit": 3})).json()["entries"]
    assert log[0]["action"] == "settings.general" and log[1]["action"] == "backups.restore"
    async with admin.anonymous("198.51.100.77") as client:
        assert (await client.post("/api/auth/login", json={"password": PASSWORD})).status_code == 200


async def test_a_bad_archive_is_refused_and_changes_nothing(admin: Admin) -> None:
    await _seed(admin)
    before = await _contents(admin)
    good = (await admin.client.get("/api/db-backups/exportAll")).content

    def rewrite(data: bytes, change: Any) -> bytes:
        source = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
        files = {m.name: source.extractfile(m).read() for m in source.getmembers()}  # type: ignore[union-attr]
        change(files)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        return out.getvalue()

    def break_a_row(files: dict[str, bytes]) -> None:
        # Valid JSON and checksum, but a row that violates NOT NULL: fails mid-restore, after
        # earlier tables were already emptied and refilled inside the transaction.
        rows = orjson.loads(files["tables/usage.json"])
        rows.append({"request_id": "bad", "status": None, "started_at": None})
        files["tables/usage.json"] = orjson.dumps(rows)
        manifest = orjson.loads(files["manifest.json"])
        import hashlib
        manifest["sha256"]["tables/usage.json"] = hashlib.sha256(files["tables/usage.json"]).hexdigest()
        files["manifest.json"] = orjson.dumps(manifest)

    def tamper(files: dict[str, bytes]) -> None:
        files["tables/providers.json"] = b"[]"

    def newer(files: dict[str, bytes]) -> None:
        manifest = orjson.loads(files["manifest.json"])
        manifest["migrations"].append("9999_future.sql")
        files["manifest.json"] = orjson.dumps(manifest)

    for data, said in [(rewrite(good, break_a_row), "does not fit"), (rewrite(good, tamper), "checksum"),
                       (rewrite(good, newer), "newer schema"), (b"not a tarball", "tar.gz"),
                       (b"", "Send the")]:
        answer = await admin.client.post("/api/db-backups/import", content=data,
                                         headers={"content-type": "application/gzip"})
        assert answer.status_code == 400 and said in answer.json()["error"]["message"], answer.text
    after = await _contents(admin)
    assert {t: r for t, r in after.items() if t != "audit_log"} == \
        {t: r for t, r in before.items() if t != "audit_log"}
    assert (await admin.client.post("/api/db-backups", json={"id": "../../etc/passwd"})).status_code == 404
    assert (await admin.client.post("/api/db-backups", json={})).status_code == 400
    assert (await admin.client.delete("/api/db-backups/omniroute-nope")).status_code == 404


async def test_portable_export_keeps_secrets_encrypted_and_imports_back(admin: Admin) -> None:
    await _seed(admin)
    exported = await admin.client.get("/api/db-backups/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/gzip"
    assert "attachment" in exported.headers["content-disposition"]
    manifest, tables = backups.read_archive(exported.content)
    assert manifest["kind"] == "portable"
    assert "admin_password" not in tables and "audit_log" not in tables and "usage" in tables
    assert "sk-backup-secret-0001" not in exported.content.decode("latin-1")
    assert tables["connections"][0]["api_key_enc"]
    await admin.client.delete("/api/providers/bk")
    imported = await admin.client.post("/api/db-backups/import", content=exported.content)
    assert imported.status_code == 200, imported.text
    provider = (await admin.client.get("/api/providers/bk")).json()
    assert provider["connections"][0]["api_key"] == "sk-b…0001"   # decrypts with the same master key
    log = await admin.client.get("/api/compliance/audit-log", params={"action": "backups.import"})
    assert log.json()["total"] == 1


async def test_scheduled_backups_run_on_interval_and_keep_the_newest(admin: Admin) -> None:
    assert (await admin.client.put("/api/db-backups")).status_code == 201   # a manual one, kept
    await admin.client.put("/api/settings", json={"backup_interval_hours": 1, "backup_keep": 2})
    first = await maintenance.run_once(admin.app.state.admin)
    assert first.get("backup")
    assert "backup" not in await maintenance.run_once(admin.app.state.admin)   # not due yet
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    for step in range(3):
        done = await maintenance.run_once(admin.app.state.admin, now=later + timedelta(hours=step))
        assert done.get("backup")
    listed = (await admin.client.get("/api/db-backups")).json()["backups"]
    assert len([b for b in listed if b["kind"] == "scheduled"]) == 2
    manual = [b for b in listed if b["kind"] == "manual"]
    assert manual   # retention never removes manual backups
    deleted = await admin.client.delete(f"/api/db-backups/{manual[0]['id']}")
    assert deleted.status_code == 200
