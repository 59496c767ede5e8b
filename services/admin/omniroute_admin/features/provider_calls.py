"""Calls to providers on the admin's behalf, through an executor (the admin has no internet
egress in Kubernetes): the target is built from the stored configuration, the credential
decrypted here and sent inside the cluster only."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import orjson

from omniroute import targets, telemetry
from omniroute.catalog import provider_type
from omniroute.config.snapshot import Connection, Provider
from omniroute.executor_pool import ExecutorPool
from omniroute.secrets import Crypto
from omniroute.settings import Settings
from omniroute.store import config_repo
from omniroute.v1 import common_pb2, executor_pb2, executor_pb2_grpc

_pools: dict[Settings, ExecutorPool] = {}


@dataclass
class Outcome:
    ok: bool
    answer: dict[str, Any]
    error: dict[str, Any] | None = None


def stub(settings: Settings, family: str) -> executor_pb2_grpc.ExecutorStub:
    """The executor of `family`, over the same long-lived channels the router uses."""
    pool = _pools.get(settings)
    if pool is None:
        pool = _pools[settings] = ExecutorPool(settings)
    return pool.stub(family)


@dataclass(frozen=True)
class _StoredProxies:
    """The admin settings the shared builder reads: the stored proxy document."""

    settings: dict[str, Any]


def target(provider: dict[str, Any], connection: dict[str, Any] | None, api_key: str, model: str, *,
           proxies: dict[str, Any], crypto: Crypto | None, timeout_s: float = 30.0) -> executor_pb2.Target:
    """An executor target from the admin API's shapes (a stored provider, or one being validated),
    built like the router's (omniroute.targets): the same URL, auth and outbound proxy
    (`proxies`: the stored proxy settings, their passwords opened with `crypto`)."""
    kind = provider_type(provider["type"])
    account = Provider(
        id=provider["id"], type=provider["type"], family=kind.family if kind else "openai",
        base_url=(provider.get("base_url") or (kind.base_url if kind else "")).rstrip("/"),
        models=tuple(provider.get("models") or ()), enabled=bool(provider.get("enabled", True)),
        settings=provider.get("settings") or {}, connections=())
    name = (connection or {}).get("name") or ""
    used = Connection(id=f"{account.id}:{name}", provider_id=account.id, name=name, api_key=api_key,
                      priority=0, enabled=True, settings=(connection or {}).get("settings") or {})
    return targets.build(_StoredProxies({"proxy": proxies}), account, used, model, timeout_s, crypto)


async def call(settings: Settings, operation: common_pb2.Operation, call_target: executor_pb2.Target,
               body: dict[str, Any] | None = None) -> Outcome:
    request = executor_pb2.ExecuteRequest(
        request_id=f"admin-{uuid.uuid4().hex}", target=call_target, body=orjson.dumps(body or {}),
        operation=executor_pb2.OperationCall(kind=operation))
    try:
        async for event in stub(settings, call_target.family).Execute(
                request, metadata=telemetry.grpc_metadata(), timeout=call_target.timeout_s + 5):
            kind = event.WhichOneof("kind")
            if kind == "error":
                return Outcome(False, {}, {"status": event.error.status, "code": event.error.code,
                                           "message": event.error.message})
            if kind == "response":
                return Outcome(True, orjson.loads(event.response))
    except grpc.aio.AioRpcError as exc:
        task = asyncio.current_task()
        if exc.code() == grpc.StatusCode.CANCELLED and task is not None and task.cancelling():
            # grpc.aio reports our own task's cancellation as a CANCELLED call: keep it a
            # cancellation, or a background loop being stopped would never stop.
            raise asyncio.CancelledError from exc
        return Outcome(False, {}, {"status": 502, "code": "executor_unavailable",
                                   "message": f"the {call_target.family} executor failed: {exc.code().name}"})
    return Outcome(False, {}, {"status": 502, "code": "empty_answer", "message": "no answer"})


async def stored_key(conn: Any, crypto: Crypto, provider_id: str,
                     connection_name: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the connection row, its clear credential): the named one, else the first enabled one by
    priority."""
    found = await config_repo.connection_credential(conn, provider_id, connection_name)
    if found is None:
        return None, ""
    name, secret, conn_settings = found
    return {"name": name, "settings": conn_settings}, crypto.decrypt(secret) if secret else ""


OPERATIONS = {"test": common_pb2.OPERATION_TEST, "list_models": common_pb2.OPERATION_LIST_MODELS,
              "oauth_token": common_pb2.OPERATION_OAUTH_TOKEN}
