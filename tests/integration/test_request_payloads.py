"""Detailed-logging payloads in Postgres (0008_request_payloads.sql): written with the usage row,
once per request id, read back by request logs, deleted with the usage row by retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from omniroute.settings import Settings
from omniroute.store import usage_queries, usage_repo
from omniroute.store.usage_queries import UsageFilter
from tests.integration.accounting_support import usage_event


async def test_payloads_are_stored_once_read_back_and_retained_like_usage(
        settings: Settings, database_url: str) -> None:
    now = datetime.now(UTC)
    env = settings.env
    logged = usage_event(f"pl-{env}-new", started=now - timedelta(days=1),
                         request_payload='{"q": "é"}'.encode(), response_payload=b'{"a": "ok\x00"}')
    plain = usage_event(f"pl-{env}-plain", started=now - timedelta(days=1))
    old = usage_event(f"pl-{env}-old", started=now - timedelta(days=40),
                      request_payload=b"old request", response_payload=b"")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await usage_repo.insert_usage(conn, [logged, plain, old]) == 3
        changed = usage_event(logged.request_id, started=now - timedelta(days=1),
                              request_payload=b"a redelivery", response_payload=b"")
        assert await usage_repo.insert_usage(conn, [changed, logged]) == 0  # idempotent
        rows = await (await conn.execute(
            "SELECT request_id, request_payload, response_payload FROM request_payloads "
            "WHERE request_id LIKE %s ORDER BY request_id", (f"pl-{env}-%",))).fetchall()
        assert rows == [(logged.request_id, '{"q": "é"}', '{"a": "ok"}'), (old.request_id, "old request", "")]

        window = UsageFilter(since=now - timedelta(days=60), until=now + timedelta(minutes=1))
        shown = {r["requestId"]: r for r in await usage_queries.request_logs(conn, window, limit=10,
                                                                             payloads=True)}
        assert shown[logged.request_id]["requestPayload"] == '{"q": "é"}'
        assert shown[plain.request_id]["requestPayload"] is None
        without = await usage_queries.request_logs(conn, window, limit=10)
        assert all("requestPayload" not in r for r in without)

        assert await usage_repo.delete_older_than(conn, now - timedelta(days=30)) >= 1
        left = await (await conn.execute("SELECT request_id FROM request_payloads WHERE request_id LIKE %s",
                                         (f"pl-{env}-%",))).fetchall()
        assert left == [(logged.request_id,)]
