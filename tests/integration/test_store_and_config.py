"""Postgres: migrations, idempotent config upserts, and the snapshot the hot path reads."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from nats.aio.client import Client

from omniroute.config.snapshot import load_snapshot
from omniroute.config.spec import ConnectionSpec, KeySpec, ProviderSpec
from omniroute.config.watcher import SnapshotHolder, changed_subject
from omniroute.secrets import Crypto, hash_api_key
from omniroute.settings import Settings
from omniroute.store import config_repo, migrate, people_repo


def test_migrations_apply_once(database_url: str) -> None:
    assert migrate.migrate(database_url) == []  # the fixture already applied them
    with psycopg.connect(database_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
    assert names == [name for name, _ in migrate.migration_files()]


def provider(api_key: str | None = "sk-upstream-aaaa", connections: int = 1) -> ProviderSpec:
    return ProviderSpec(id="p1", type="openai", base_url="http://127.0.0.1:1/v1", models=["m"],
                        connections=[ConnectionSpec(name=f"c{i}", api_key=api_key, priority=i)
                                     for i in range(connections)])


async def test_upserts_are_idempotent_and_credentials_encrypted(settings: Settings) -> None:
    crypto = Crypto(settings.master_key)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        for _ in range(2):
            await config_repo.upsert_provider(conn, provider(connections=2), crypto)
            await config_repo.upsert_key(conn, KeySpec(name="k1", key="sk-omni-aaaaaaaaaaaaaaaa"))
        await conn.commit()
        rows = await (await conn.execute("SELECT name, api_key_enc FROM connections ORDER BY name")).fetchall()
        assert [r[0] for r in rows] == ["c0", "c1"]
        assert all("sk-upstream" not in r[1] for r in rows)
        keys = await (await conn.execute("SELECT key_hash FROM api_keys")).fetchall()
        assert keys == [(hash_api_key("sk-omni-aaaaaaaaaaaaaaaa"),)]
        # the spec is the whole truth: a connection it no longer names goes away
        await config_repo.upsert_provider(conn, provider(connections=1), crypto)
        await conn.commit()

    snapshot = await load_snapshot(settings.database_url, crypto)
    assert [c.api_key for c in snapshot.providers["p1"].connections] == ["sk-upstream-aaaa"]
    assert snapshot.keys_by_hash[hash_api_key("sk-omni-aaaaaaaaaaaaaaaa")].name == "k1"
    edge_view = await load_snapshot(settings.database_url, None)  # the edge never decrypts
    assert edge_view.providers["p1"].connections[0].api_key == ""


async def test_generated_key_is_returned_once(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        _, first = await config_repo.upsert_key(conn, KeySpec(name="generated"))
        _, second = await config_repo.upsert_key(conn, KeySpec(name="generated"))
        await conn.commit()
    assert first is not None and first.startswith("sk-omni-")
    assert second is None


async def test_wrong_master_key_cannot_read_credentials(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        await config_repo.upsert_provider(conn, provider(), Crypto(settings.master_key))
        await conn.commit()
    snapshot = await load_snapshot(settings.database_url, Crypto("another-master-key-entirely"))
    connection = snapshot.providers["p1"].connections[0]
    assert connection.api_key == "" and connection.enabled is False  # skipped, snapshot still loads


async def test_snapshot_reloads_on_config_changed(settings: Settings, nats_client: Client) -> None:
    holder = SnapshotHolder(settings, decrypt=True)
    await holder.start(nats_client)
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await config_repo.upsert_key(conn, KeySpec(name="late", key="sk-omni-bbbbbbbbbbbbbbbb"))
            await conn.commit()
        assert hash_api_key("sk-omni-bbbbbbbbbbbbbbbb") not in holder.current.keys_by_hash
        await nats_client.publish(changed_subject(settings), b"")
        assert await _loads_key(holder, "sk-omni-bbbbbbbbbbbbbbbb")
    finally:
        await holder.stop()


async def test_a_change_announced_during_the_first_load_is_not_missed(
        settings: Settings, nats_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service starting while the admin applies the config file: the announcement may come
    while the first snapshot loads; the service must reload, not wait for the periodic refresh."""
    from omniroute.config import watcher

    real_load = watcher.load_snapshot
    first = asyncio.Event()

    async def slow_first_load(*args: object, **kwargs: object) -> object:
        if not first.is_set():
            first.set()
            result = await real_load(*args, **kwargs)  # type: ignore[arg-type]
            await asyncio.sleep(0.3)  # the change lands and is announced meanwhile
            return result
        return await real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watcher, "load_snapshot", slow_first_load)
    holder = SnapshotHolder(settings, decrypt=True)

    async def change_while_loading() -> None:
        await first.wait()
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await config_repo.upsert_key(conn, KeySpec(name="racer", key="sk-omni-cccccccccccccccc"))
            await conn.commit()
        await nats_client.publish(changed_subject(settings), b"")
        await nats_client.flush()

    changer = asyncio.create_task(change_while_loading())
    await holder.start(nats_client)
    await changer
    try:
        assert await _loads_key(holder, "sk-omni-cccccccccccccccc")
    finally:
        await holder.stop()


async def _loads_key(holder: SnapshotHolder, key: str, within_s: float = 2.0) -> bool:
    """Whether the holder's snapshot comes to know `key` within `within_s`."""
    for _ in range(int(within_s / 0.02)):
        if hash_api_key(key) in holder.current.keys_by_hash:
            return True
        await asyncio.sleep(0.02)
    return hash_api_key(key) in holder.current.keys_by_hash


async def test_two_first_sign_ins_of_one_person_at_once_make_one_row(settings: Settings) -> None:
    async def sign_in() -> people_repo.Person:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            return await people_repo.upsert(conn, email="race@example.com", name="R", role="viewer",
                                            team_ids=[], source="oidc", oidc_subject="iss|race")

    first, second = await asyncio.gather(sign_in(), sign_in())
    assert first.id == second.id
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        assert [p.email for p in await people_repo.list_people(conn)].count("race@example.com") == 1
        assert await people_repo.delete(conn, first.id)
