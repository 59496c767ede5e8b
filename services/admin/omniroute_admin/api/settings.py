"""/api/settings: general settings, require-login, outbound proxy, IP filter.

Each write is validated, stored with its audit row in one transaction, and announced so that
edges and routers reload their snapshot (ConfigSnapshot.settings).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omniroute.ipfilter import IpFilter
from omniroute_admin import audit, proxy_check, settings_store
from omniroute_admin.deps import admin_state
from omniroute_admin.requestctx import client_ip
from omniroute_admin.sessions import require_session
from omniroute_admin.settings_store import GeneralSettings, IpFilterSettings, ProxySettings
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)], tags=["settings"])


async def _store(state: AdminState, request: Request, name: str, value: dict[str, Any],
                 before: dict[str, Any]) -> None:
    async with state.pool.connection() as conn, conn.transaction():
        await settings_store.save_raw(conn, name, value)
        await audit.record(state, request, f"settings.{name}", name, before=before, after=value, conn=conn)
    await state.announce("settings")


@router.get("/api/settings", summary="General settings")
async def get_general(request: Request) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
        return (await settings_store.load(conn, "general", GeneralSettings)).model_dump()


@router.put("/api/settings", summary="Change general settings (fields not sent keep their value)")
async def put_general(body: dict[str, Any], request: Request) -> dict[str, Any]:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        before = await settings_store.load_raw(conn, "general")
    try:
        merged = GeneralSettings.model_validate({**GeneralSettings.model_validate(before).model_dump(),
                                                 **body})
    except ValidationError as exc:
        raise HTTPException(400, _message(exc)) from None
    await _store(state, request, "general", merged.model_dump(mode="json"), before)
    return merged.model_dump()


class RequireLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    require_login: bool = Field(alias="requireLogin")


@router.get("/api/settings/require-login", summary="Is a login needed for management?")
async def get_require_login(request: Request) -> dict[str, bool]:
    async with admin_state(request).pool.connection() as conn:
        general = await settings_store.load(conn, "general", GeneralSettings)
    return {"requireLogin": general.require_login}


@router.put("/api/settings/require-login", summary="Switch the management login on or off")
async def put_require_login(body: RequireLogin, request: Request) -> dict[str, bool]:
    await put_general({"require_login": body.require_login}, request)
    return {"requireLogin": body.require_login}


@router.get("/api/settings/proxy", summary="Outbound proxies (passwords masked)")
async def get_proxy(request: Request) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
        return settings_store.shown_proxies(await settings_store.load_raw(conn, "proxy"))


@router.put("/api/settings/proxy", summary="Set the outbound proxies (global, per provider, per connection)")
async def put_proxy(body: ProxySettings, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        before = await settings_store.load_raw(conn, "proxy")
    sealed = settings_store.seal_proxies(body, state.crypto, before)
    await _store(state, request, "proxy", sealed, before)
    return settings_store.shown_proxies(sealed)


class ProxyTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, description="a proxy URL; omitted: the stored one named by scope")
    scope: str = Field(default="global", description='"global", "provider:<id>" or "connection:<p:c>"')
    target: str = Field(default="api.openai.com:443", pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
    timeout_s: float = Field(default=5.0, gt=0, le=30)


@router.post("/api/settings/proxy/test", summary="Open a tunnel through a proxy to a target")
async def test_proxy(body: ProxyTest, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    if body.url:
        try:
            settings_store.check_proxy_url(body.url)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        url = body.url
    else:
        async with state.pool.connection() as conn:
            stored = await settings_store.load_raw(conn, "proxy")
        entry = _stored_entry(stored, body.scope)
        if entry is None:
            raise HTTPException(404, f"No proxy is configured for {body.scope!r}.")
        url = settings_store.clear_proxy_url(entry, state.crypto)
    host, _, port = body.target.rpartition(":")
    return await proxy_check.check(url, host.strip("[]"), int(port), timeout_s=body.timeout_s)


def _stored_entry(stored: dict[str, Any], scope: str) -> dict[str, Any] | None:
    kind, _, name = scope.partition(":")
    if kind == "global":
        entry = stored.get("global")
        return entry if isinstance(entry, dict) else None
    if kind in {"provider", "connection"}:
        entry = (stored.get(kind + "s") or {}).get(name)
        return entry if isinstance(entry, dict) else None
    raise HTTPException(400, 'scope must be "global", "provider:<id>" or "connection:<provider:name>".')


@router.get("/api/settings/ip-filter", summary="IP allowlist / blocklist")
async def get_ip_filter(request: Request) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
        return (await settings_store.load(conn, "ip_filter", IpFilterSettings)).model_dump()


@router.put("/api/settings/ip-filter", summary="Set the IP allowlist / blocklist (enforced by the edge)")
async def put_ip_filter(body: IpFilterSettings, request: Request, force: bool = False) -> dict[str, Any]:
    state = admin_state(request)
    caller = client_ip(request)
    rules = IpFilter.build(body.allowlist, body.blocklist)
    if body.enabled and body.apply_to_dashboard and not force and not rules.allows(caller):
        raise HTTPException(409, f"These rules would lock you out: your address {caller} is not "
                                 "allowed. Add it, or send ?force=true.")
    async with state.pool.connection() as conn:
        before = await settings_store.load_raw(conn, "ip_filter")
    value = body.model_dump(mode="json")
    await _store(state, request, "ip_filter", value, before)
    return value


def _message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
