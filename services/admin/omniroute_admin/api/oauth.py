"""OAuth connections: /api/oauth/{provider}/{action}.

The provider's OAuth client is its type's preset (catalog.yaml `oauth`: Claude Code, Codex,
GitHub Copilot, Qwen …) overridden by its `settings.oauth`: `{authorize_url, token_url,
device_authorization_url, client_id, client_secret?, scopes, redirect_uri, authorize_params,
token_format, exchange_state, device_pkce, account_header}`. A provider id that names a preset
type and does not exist yet is created by `start` / `device/start`. Actions:
- `start` → the authorize URL (authorization code with PKCE S256 and a one-time state);
- `callback` (`code`, `state`; or `code` as "code#state", as Anthropic's code page shows it)
  → token exchange, tokens stored encrypted on the connection (with the account header of
  `account_header`, e.g. Codex's chatgpt-account-id, under the connection's `settings.headers`);
- `device/start` → user code and verification URL (with a PKCE challenge when `device_pkce`);
  `device/poll` (`handle`) → pending / connected;
- `status` → each connection's token status (`ok`, `refresh_failed` …) and expiry.
Token endpoints are called through an executor (no egress here). The router refreshes tokens."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request

from omniroute import oauth
from omniroute.catalog import provider_type
from omniroute.config.spec import ProviderSpec
from omniroute.store import config_repo
from omniroute.v1 import executor_pb2
from omniroute_admin import audit
from omniroute_admin.access import requires
from omniroute_admin.deps import Caller, CallerDep, StateDep
from omniroute_admin.features import connection_health, provider_calls
from omniroute_admin.services import providers
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])
FLOW_TTL_S = 600
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


async def _params(request: Request) -> dict[str, Any]:
    merged: dict[str, Any] = dict(request.query_params)
    if request.method == "POST" and await request.body():
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, "The body must be JSON.") from exc
        if isinstance(body, dict):
            merged.update(body)
    return merged


async def _provider(state: AdminState, caller: Caller, provider_id: str,
                    create: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    async with state.pool.connection() as conn:
        found = await config_repo.list_providers(conn, provider_id=provider_id)
    preset = provider_type(provider_id)
    if not found and create and preset is not None and preset.oauth:
        # Connecting a subscription needs no provider set up first: one of its type is made.
        found = [await providers.create_provider(state, caller, ProviderSpec(id=provider_id, type=provider_id))]
    if not found:
        raise HTTPException(404, f"No provider named {provider_id!r}.")
    config = oauth.client_config(found[0]["type"], found[0].get("settings"))
    if not config.get("token_url") or not config.get("client_id"):
        raise HTTPException(400, f"The provider {provider_id!r} has no OAuth settings "
                                 "(settings.oauth: token_url, client_id, authorize_url …).")
    return found[0], config


async def _token_call(state: AdminState, provider: dict[str, Any], config: dict[str, Any], url: str,
                      form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    kind = provider_type(provider["type"])
    target = executor_pb2.Target(provider_id=provider["id"], family=kind.family if kind else "openai",
                                 timeout_s=30)
    outcome = await provider_calls.call(state.settings, provider_calls.OPERATIONS["oauth_token"],
                                        target, {"token_url": url, "form": form,
                                                 "format": str(config.get("token_format") or "form")})
    if not outcome.ok:
        message = (outcome.error or {}).get("message")
        raise HTTPException(502, f"The OAuth server could not be reached: {message}")
    return int(outcome.answer.get("status") or 0), outcome.answer.get("body") or {}


async def _store(state: AdminState, caller: Caller, provider: dict[str, Any], config: dict[str, Any], name: str,
                 answer: dict[str, Any]) -> dict[str, Any]:
    """Save the tokens on the connection (created when new) and forget any cached router state."""
    tokens = oauth.from_token_answer(answer, state.crypto)
    connection_id = f"{provider['id']}:{name}"
    settings: dict[str, Any] = {"oauth": {
        "token_url": config["token_url"], "client_id": config["client_id"],
        "token_format": str(config.get("token_format") or "form"), "refresh_token_enc": tokens.refresh_enc,
        "expires_at": tokens.expires_at, "status": oauth.OK, "error": ""}}
    account = config.get("account_header")
    if isinstance(account, dict) and account.get("header"):
        value = oauth.id_token_claim(answer, [str(k) for k in account.get("claim") or []])
        if not value:
            raise HTTPException(502, f"The token answer names no account ({account['header']}): "
                                     "the provider's id_token lacks the claim.")
        settings["headers"] = {str(account["header"]): value}
    if config.get("client_secret"):
        settings["oauth"]["client_secret_enc"] = state.crypto.encrypt(str(config["client_secret"]))
    async with state.pool.connection() as conn:
        await config_repo.save_oauth_connection(conn, provider["id"], name, tokens.access_enc, settings)
        await audit.record(state, caller, "oauth.connect", connection_id,
                           detail={"expires_at": tokens.expires_at}, conn=conn)
    await state.redis.delete(oauth.redis_key(state.settings.env, connection_id))
    await state.announce("providers")
    # New tokens: what the connection earned with the old ones (an expired token's 401) goes.
    await connection_health.forget(state, [connection_id])
    return {"connected": True, "provider": provider["id"], "connection": name,
            "expiresAt": tokens.expires_at}


def _secret(config: dict[str, Any]) -> dict[str, str]:
    """An installed app's published client secret goes with every grant (Google's clients)."""
    return {"client_secret": str(config["client_secret"])} if config.get("client_secret") else {}


def _flow_key(state: AdminState, kind: str, handle: str) -> str:
    return f"{state.settings.env}:oauth-{kind}:{handle}"


# One handler for both methods, registered twice so that each has its own OpenAPI operation id.
@router.get("/api/oauth/{provider_id}/{action:path}", operation_id="oauth_action_get",
            openapi_extra=requires("admin"),  # it starts and completes a connection's login
            summary="OAuth flows: start, callback, device/start, device/poll, status")
@router.post("/api/oauth/{provider_id}/{action:path}", operation_id="oauth_action_post",
             summary="OAuth flows: start, callback, device/start, device/poll, status")
async def oauth_action(provider_id: str, action: str, request: Request, state: StateDep,
                       caller: CallerDep) -> dict[str, Any]:
    params = await _params(request)
    if action == "status":
        return await _status(state, provider_id)
    provider, config = await _provider(state, caller, provider_id,
                                       create=action in ("start", "device/start"))
    redis = state.redis
    name = str(params.get("connection") or "oauth")
    if action == "start":
        verifier, challenge = oauth.pkce_pair()
        flow_state = secrets.token_urlsafe(24)
        redirect = str(params.get("redirect_uri") or config.get("redirect_uri") or "")
        await redis.set(_flow_key(state, "flow", flow_state), orjson.dumps(
            {"provider": provider_id, "connection": name, "verifier": verifier, "redirect_uri": redirect}),
            ex=FLOW_TTL_S)
        query = {**(config.get("authorize_params") or {}),
                 "response_type": "code", "client_id": config["client_id"], "redirect_uri": redirect,
                 "scope": " ".join(config.get("scopes") or []), "state": flow_state,
                 "code_challenge": challenge, "code_challenge_method": "S256"}
        return {"authUrl": f"{config.get('authorize_url', '')}?{urlencode(query)}", "state": flow_state,
                "expiresIn": FLOW_TTL_S}
    if action == "callback":
        code, _, pasted_state = str(params.get("code") or "").partition("#")
        returned_state = str(params.get("state") or pasted_state)
        raw = await redis.getdel(_flow_key(state, "flow", returned_state))
        if raw is None:
            raise HTTPException(400, "Unknown or expired OAuth state: start the flow again.")
        flow = orjson.loads(raw)
        if flow["provider"] != provider_id:
            raise HTTPException(400, "The OAuth state belongs to another provider.")
        if params.get("error"):
            raise HTTPException(400, f"The authorization was refused: {params['error']}")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow["redirect_uri"],
                "client_id": config["client_id"], "code_verifier": flow["verifier"],
                **_secret(config)}
        if config.get("exchange_state"):
            form["state"] = returned_state
        status, answer = await _token_call(state, provider, config, config["token_url"], form)
        if status >= 400 or "error" in answer:
            reason = answer.get("error_description") or answer.get("error")
            raise HTTPException(400, f"The token exchange failed: {reason}")
        return await _store(state, caller, provider, config, flow["connection"], answer)
    if action == "device/start":
        url = config.get("device_authorization_url")
        if not url:
            raise HTTPException(400, f"The provider {provider_id!r} has no device_authorization_url.")
        device_form = {"client_id": config["client_id"], "scope": " ".join(config.get("scopes") or [])}
        verifier = ""
        if config.get("device_pkce"):
            verifier, challenge = oauth.pkce_pair()
            device_form |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        status, answer = await _token_call(state, provider, config, str(url), device_form)
        if status >= 400 or not answer.get("device_code"):
            raise HTTPException(502, f"The device authorization failed: {answer.get('error') or status}")
        handle = secrets.token_urlsafe(16)  # the device code itself stays here
        await redis.set(_flow_key(state, "device", handle), orjson.dumps(
            {"provider": provider_id, "connection": name, "device_code": answer["device_code"],
             "verifier": verifier}),
            ex=int(answer.get("expires_in") or FLOW_TTL_S))
        return {"handle": handle, "userCode": answer.get("user_code"),
                "verificationUri": answer.get("verification_uri"),
                "verificationUriComplete": answer.get("verification_uri_complete"),
                "interval": answer.get("interval", 5), "expiresIn": answer.get("expires_in")}
    if action == "device/poll":
        key = _flow_key(state, "device", str(params.get("handle") or ""))
        raw = await redis.get(key)
        if raw is None:
            raise HTTPException(400, "Unknown or expired device flow: start it again.")
        flow = orjson.loads(raw)
        form = {"grant_type": DEVICE_GRANT, "device_code": flow["device_code"],
                "client_id": config["client_id"], **_secret(config)}
        if flow.get("verifier"):
            form["code_verifier"] = flow["verifier"]
        status, answer = await _token_call(state, provider, config, config["token_url"], form)
        error = answer.get("error")
        if error in ("authorization_pending", "slow_down"):
            return {"status": "pending", "slowDown": error == "slow_down"}
        await redis.delete(key)
        if status >= 400 or error:
            return {"status": "failed", "error": answer.get("error_description") or error or status}
        return {"status": "connected", **await _store(state, caller, provider, config, flow["connection"], answer)}
    raise HTTPException(404, f"Unknown OAuth action {action!r}: start, callback, device/start, "
                             "device/poll, status.")


async def _status(state: AdminState, provider_id: str) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        rows = await config_repo.oauth_settings(conn, provider_id)
    out = []
    for connection_id, name, enabled, stored in rows:
        if not isinstance(stored, dict):
            continue
        live = await state.redis.get(oauth.redis_key(state.settings.env, connection_id))
        current = oauth.TokenState.loads(live) if live else None
        expires_at = current.expires_at if current else float(stored.get("expires_at") or 0)
        out.append({"connection": name, "enabled": enabled,
                    "status": current.status if current else stored.get("status", oauth.OK),
                    "error": (current.error if current else stored.get("error")) or None,
                    "expiresAt": expires_at, "expiresInS": round(expires_at - time.time(), 1)})
    return {"provider": provider_id, "connections": out}
