"""/api/telemetry/summary, /api/telemetry/sessions and /api/monitoring/health.

/api/sessions (management login sessions) lives in api/auth.py; the API clients active recently
(the gateway's "sessions") are at /api/telemetry/sessions.

Telemetry and sessions read what analytics keeps in Redis (fed by every replica's events), so
any admin replica gives the same answer. Health probes every backing store and service
concurrently, each with a short timeout, so one hung dependency cannot hang the page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Query
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omniroute import runtime
from omniroute.analytics_store import LatencyStore, SessionStore
from omniroute.settings import Settings
from omniroute.store import config_repo, database_repo
from omniroute_admin.deps import StateDep
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])
PROBE_TIMEOUT_S = 2.0


@router.get("/api/telemetry/summary")
async def telemetry_summary(state: StateDep, window: float | None = Query(
        None, gt=0, le=7 * 86400, description="seconds; default OMNIROUTE_TELEMETRY_WINDOW_S")
                            ) -> dict[str, Any]:
    seconds = window or state.settings.telemetry_window_s
    providers = await LatencyStore(state.redis, state.settings.env).summary(seconds)
    return {"providers": providers, "windowSeconds": seconds}


@router.get("/api/telemetry/sessions")
async def active_sessions(state: StateDep, window: float | None = Query(None, gt=0, le=86400)
                          ) -> dict[str, Any]:
    """API keys that made requests in the last `window` seconds (default 15 minutes)."""
    seconds = window or state.settings.sessions_window_s
    active = await SessionStore(state.redis, state.settings.env).active(seconds)
    names: dict[str, str] = {}
    if active:
        async with state.pool.connection() as conn:
            names = await config_repo.key_names(conn, [entry["keyId"] for entry in active])
    sessions = [{**entry, "keyName": names.get(entry["keyId"]),
                 "lastSeen": datetime.fromtimestamp(entry["lastSeen"], UTC).isoformat()}
                for entry in active]
    return {"sessions": sessions, "count": len(sessions), "windowSeconds": seconds}


# ---- health ----------------------------------------------------------------------------------

async def _timed(probe: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        details = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
        result = {"up": True, **details}
    except Exception as exc:  # any failure means down; say why
        result = {"up": False, "error": str(exc) or type(exc).__name__}
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    result.setdefault("version", None)
    return result


async def _postgres(state: AdminState) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        return {"version": await database_repo.server_version(conn)}


async def _redis(state: AdminState) -> dict[str, Any]:
    info = await state.redis.info("server")
    return {"version": info.get("redis_version")}


async def _nats(state: AdminState) -> dict[str, Any]:
    if not state.nats.is_connected:
        raise ConnectionError("not connected")
    await state.nats.flush(timeout=int(PROBE_TIMEOUT_S))  # a round trip to the server
    info = await state.nats.jetstream().account_info()
    return {"version": str(state.nats.connected_server_version),
            "jetstream": {"streams": info.streams, "consumers": info.consumers}}


def _http(client: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        response = await client.get(url)
        if response.status_code >= 400:
            raise ConnectionError(f"{url} answered {response.status_code}")
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        return {"url": url, "version": body.get("version") if isinstance(body, dict) else None}
    return probe


def _grpc(address: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def probe() -> dict[str, Any]:
        async with runtime.channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=PROBE_TIMEOUT_S)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise ConnectionError(f"{address} is {status}")
        return {"address": address}
    return probe


def _executor_addresses(settings: Settings) -> dict[str, str]:
    addresses = {"executor": settings.executor_addr}
    for entry in settings.executor_addrs.split(","):
        family, _, address = entry.strip().partition("=")
        if family and address:
            addresses[f"executor:{family}"] = address
    return addresses


def _own_version() -> str | None:
    try:
        return metadata.version("omniroute-admin")
    except metadata.PackageNotFoundError:
        return None


@router.get("/api/monitoring/health")
async def monitoring_health(state: StateDep) -> dict[str, Any]:
    settings = state.settings
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
        probes: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "postgres": lambda: _postgres(state), "redis": lambda: _redis(state),
            "nats": lambda: _nats(state),
            "edge": _http(client, settings.edge_health_url),
            "router": _grpc(settings.router_addr),
            **{name: _grpc(address) for name, address in _executor_addresses(settings).items()},
            "accounting": _http(client, settings.accounting_health_url),
            "analytics": _http(client, settings.analytics_health_url),
        }
        results = await asyncio.gather(*(_timed(probe) for probe in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    checks["admin"] = {"up": True, "latencyMs": 0.0, "version": _own_version()}
    stores_up = all(checks[name]["up"] for name in ("postgres", "redis", "nats"))
    all_up = all(check["up"] for check in checks.values())
    return {"status": "ok" if all_up else ("degraded" if stores_up else "down"),
            "checkedAt": datetime.now(UTC).isoformat(), "services": checks}
