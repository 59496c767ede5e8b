"""Accounting's MCP call records (issue 21), through the accounting process itself: the router's
`McpCallEvent`s on `<env>.mcp.call` → one mcp_calls row per call with every field, priced per call
when the server did the work (ok, tool_error), and one audit_log row (actor key:<id>, action
mcp.<method>, the key's team) — each once, though every event is delivered twice and a garbled
message sits among them."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from nats.aio.client import Client
from psycopg.rows import dict_row

from omniroute.bus.connection import ensure_stream
from omniroute.settings import Settings
from omniroute.v1 import events_pb2
from tests import log_scan
from tests.integration.test_accounting_process import start_accounting

STARTED = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def mcp_event(request_id: str, outcome: str, *, method: str = "tools/call", name: str = "echo",
              key: str = "key-mcp-a", team: str = "team-tools", price: float = 0.0025,
              error: str = "", offset_s: int = 0) -> events_pb2.McpCallEvent:
    event = events_pb2.McpCallEvent(
        request_id=request_id, key_id=key, team_id=team, person_id="person-ann", server_id="tools",
        method=method, name=name, args_bytes=17, args_sha256="ab" * 32, result_bytes=240,
        latency_ms=12.5, outcome=outcome, error_message=error, price_per_call_usd=price,
        client_session_id="session-1")
    event.started_at.FromDatetime(STARTED + timedelta(seconds=offset_s))
    return event


async def rows(database_url: str, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(query, params)
        return await cursor.fetchall()


async def test_each_call_is_one_priced_row_and_one_audit_entry_despite_redelivery(
        settings: Settings, nats_client: Client, database_url: str, tmp_path: Path) -> None:
    prefix = f"mcp-{settings.env}-"
    events = [
        mcp_event(prefix + "ok", "ok", offset_s=0),
        mcp_event(prefix + "tool-error", "tool_error", name="fail", offset_s=1),
        mcp_event(prefix + "refused", "refused", name="secret_tool", error="tool not allowed", offset_s=2),
        mcp_event(prefix + "timeout", "timeout", name="sleep", error="did not answer within 1 s", offset_s=3),
        mcp_event(prefix + "dead", "upstream_error", error="closed the connection", offset_s=4),
        mcp_event(prefix + "resource", "ok", method="resources/read", name="mock://notes/readme",
                  key="key-mcp-b", team="team-other", price=0.0, offset_s=5),
        mcp_event(prefix + "prompt", "ok", method="prompts/get", name="greet", price=1.5, offset_s=6),
    ]
    await ensure_stream(nats_client, settings)
    js = nats_client.jetstream()
    subject = settings.subject("mcp.call")
    await js.publish(subject, b"\xff not a protobuf", headers={"Nats-Msg-Id": prefix + "garbled"})
    for copy in ("", "#again"):   # distinct message ids: JetStream keeps and delivers both
        for event in events:
            await js.publish(subject, event.SerializeToString(), headers={"Nats-Msg-Id": event.request_id + copy})

    logs = tmp_path / "logs"
    logs.mkdir()
    with log_scan.watched(logs, "accounting-mcp") as watched:
        process = start_accounting(settings, logs / "accounting.log")
        try:
            deadline = time.monotonic() + 30
            while len(await rows(database_url, "SELECT request_id FROM mcp_calls WHERE request_id LIKE %s",
                                 (prefix + "%",))) < len(events):
                assert time.monotonic() < deadline, "accounting did not write the MCP calls"
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)   # the redelivered copies are handled too (and write nothing)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        watched.assert_clean("accounting stopped")
    assert b"dropping an undecodable MCP call event" in (logs / "accounting.log").read_bytes()

    calls = {row["request_id"]: row for row in await rows(
        database_url, "SELECT * FROM mcp_calls WHERE request_id LIKE %s", (prefix + "%",))}
    assert sorted(calls) == sorted(event.request_id for event in events)
    charged = {prefix + "ok": Decimal("0.0025"), prefix + "tool-error": Decimal("0.0025"),
               prefix + "prompt": Decimal("1.5")}
    for event in events:
        row = calls[event.request_id]
        assert row == {
            "request_id": event.request_id, "key_id": event.key_id, "team_id": event.team_id,
            "person_id": "person-ann", "server_id": "tools", "method": event.method, "name": event.name,
            "args_bytes": 17, "args_sha256": "ab" * 32, "result_bytes": 240, "latency_ms": 12.5,
            "outcome": event.outcome, "error_message": event.error_message,
            "cost_usd": charged.get(event.request_id, Decimal(0)),
            "started_at": event.started_at.ToDatetime(tzinfo=UTC), "recorded_at": row["recorded_at"]}

    audit = await rows(database_url, "SELECT * FROM audit_log WHERE request_id LIKE %s ORDER BY at",
                       (prefix + "%",))
    assert [entry["request_id"] for entry in audit] == [event.request_id for event in events]
    targets = {"tools/call": "tools__{name}", "prompts/get": "tools__{name}", "resources/read": "{name}"}
    for entry, event in zip(audit, events, strict=True):
        assert entry["actor"] == f"key:{event.key_id}"
        assert entry["action"] == f"mcp.{event.method}"
        assert entry["team_id"] == event.team_id
        assert entry["target"] == targets[event.method].format(name=event.name)
        assert entry["at"] == event.started_at.ToDatetime(tzinfo=UTC)
        assert entry["detail"] == {
            "server": "tools", "name": event.name, "outcome": event.outcome, "error": event.error_message,
            "args_bytes": 17, "args_sha256": "ab" * 32, "result_bytes": 240, "latency_ms": 12.5,
            "cost_usd": {prefix + "ok": "0.0025", prefix + "tool-error": "0.0025",
                         prefix + "prompt": "1.5"}.get(event.request_id, "0"),
            "person": "person-ann", "session": "session-1"}
