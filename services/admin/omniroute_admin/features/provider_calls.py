"""Calls to providers on the admin's behalf, through an executor (the admin has no internet
egress in Kubernetes): the target is built from the stored configuration, the credential
decrypted here and sent inside the cluster only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import orjson

from omniroute import telemetry
from omniroute.catalog import auth_style, provider_type
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


def target(provider: dict[str, Any], connection: dict[str, Any] | None, api_key: str, model: str,
           timeout_s: float = 30.0) -> executor_pb2.Target:
    """An executor target from the admin API's shapes (a stored provider, or one being validated)."""
    kind = provider_type(provider["type"])
    settings: dict[str, Any] = provider.get("settings") or {}
    params = {}
    if kind is not None:
        params = {"capabilities": ",".join(kind.capabilities), "list_models": kind.list_models}
        if kind.url_style:
            params["url_style"] = kind.url_style
        if kind.api_version:
            params["api_version"] = kind.api_version
    if isinstance(settings.get("api_version"), str):
        params["api_version"] = settings["api_version"]
    headers = (connection or {}).get("settings", {}).get("headers")
    return executor_pb2.Target(
        provider_id=provider["id"], provider_type=provider["type"], family=kind.family if kind else "openai",
        base_url=(provider.get("base_url") or (kind.base_url if kind else "")).rstrip("/"),
        api_key=api_key, connection=(connection or {}).get("name", ""), model=model, timeout_s=timeout_s,
        headers=headers if isinstance(headers, dict) else {}, auth=auth_style(provider["type"], settings),
        params=params)


async def call(settings: Settings, operation: int, call_target: executor_pb2.Target,
               body: dict[str, Any] | None = None) -> Outcome:
    request = executor_pb2.ExecuteRequest(request_id=f"admin-{uuid.uuid4().hex}", target=call_target,
                                          operation=operation,  # type: ignore[arg-type]
                                          body=orjson.dumps(body or {}))
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
