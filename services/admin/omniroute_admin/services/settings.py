"""Admin settings (admin_settings, validated by settings_model): general, the login switch,
outbound proxies, the IP filter and where budget alerts go. Every change is audited and announced so that edges and
routers reload their snapshot (ConfigSnapshot.settings)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from omniroute import alerts
from omniroute.ipfilter import IpFilter
from omniroute.store import admin_settings_repo
from omniroute_admin import audit, settings_model
from omniroute_admin.deps import Caller
from omniroute_admin.features import proxy_check
from omniroute_admin.settings_model import (
    BudgetAlertSettings,
    GeneralSettings,
    IpFilterSettings,
    ProxySettings,
)
from omniroute_admin.state import AdminState


async def _store(state: AdminState, caller: Caller, name: str, value: dict[str, Any],
                 before: dict[str, Any]) -> None:
    async with state.pool.connection() as conn, conn.transaction():
        await admin_settings_repo.save(conn, name, value)
        await audit.record(state, caller, f"settings.{name}", name, before=before, after=value, conn=conn)
    await state.announce("settings")


async def general(state: AdminState) -> GeneralSettings:
    async with state.pool.connection() as conn:
        return await settings_model.load(conn, "general", GeneralSettings)


async def change_general(state: AdminState, caller: Caller, changes: dict[str, Any]) -> GeneralSettings:
    """Fields not given keep their value."""
    async with state.pool.connection() as conn:
        before = await admin_settings_repo.load(conn, "general")
    try:
        current = GeneralSettings.model_validate(before)
        merged = GeneralSettings.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        raise HTTPException(400, _message(exc)) from None
    if merged.require_login != current.require_login and not caller.principal.at_least("owner"):
        # Login off makes every caller an owner: only an owner may decide that (any route).
        raise HTTPException(403, "Only an owner may switch the management login on or off.")
    await _store(state, caller, "general", merged.model_dump(mode="json"), before)
    return merged


async def proxies(state: AdminState) -> dict[str, Any]:
    """The outbound proxies, passwords masked."""
    async with state.pool.connection() as conn:
        return settings_model.shown_proxies(await admin_settings_repo.load(conn, "proxy"))


async def set_proxies(state: AdminState, caller: Caller, value: ProxySettings) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        before = await admin_settings_repo.load(conn, "proxy")
    sealed = settings_model.seal_proxies(value, state.crypto, before)
    await _store(state, caller, "proxy", sealed, before)
    return settings_model.shown_proxies(sealed)


async def set_global_proxy(state: AdminState, caller: Caller, url: str, enabled: bool) -> None:
    """The global entry only ("" removes it); the other entries keep their stored passwords."""
    current = await proxies(state)
    current["global"] = {"url": url, "enabled": enabled} if url else None
    await set_proxies(state, caller, ProxySettings.model_validate(current))


async def test_proxy(state: AdminState, url: str | None, scope: str, target: str,
                     timeout_s: float) -> dict[str, Any]:
    """Open a tunnel through a proxy (the given URL, or the stored one of `scope`) to host:port."""
    if url:
        try:
            settings_model.check_proxy_url(url)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
    else:
        async with state.pool.connection() as conn:
            stored = await admin_settings_repo.load(conn, "proxy")
        entry = _stored_entry(stored, scope)
        if entry is None:
            raise HTTPException(404, f"No proxy is configured for {scope!r}.")
        url = settings_model.clear_proxy_url(entry, state.crypto)
    host, _, port = target.rpartition(":")
    return await proxy_check.check(url, host.strip("[]"), int(port), timeout_s=timeout_s)


def _stored_entry(stored: dict[str, Any], scope: str) -> dict[str, Any] | None:
    kind, _, name = scope.partition(":")
    if kind == "global":
        entry = stored.get("global")
        return entry if isinstance(entry, dict) else None
    if kind in {"provider", "connection"}:
        entry = (stored.get(kind + "s") or {}).get(name)
        return entry if isinstance(entry, dict) else None
    raise HTTPException(400, 'scope must be "global", "provider:<id>" or "connection:<provider:name>".')


async def ip_filter(state: AdminState) -> IpFilterSettings:
    async with state.pool.connection() as conn:
        return await settings_model.load(conn, "ip_filter", IpFilterSettings)


async def set_ip_filter(state: AdminState, caller: Caller, value: IpFilterSettings,
                        force: bool) -> dict[str, Any]:
    """Refused (409) when the rules would lock the caller out of the dashboard, unless `force`."""
    rules = IpFilter.build(value.allowlist, value.blocklist)
    if value.enabled and value.apply_to_dashboard and not force and not rules.allows(caller.ip):
        raise HTTPException(409, f"These rules would lock you out: your address {caller.ip} is not "
                                 "allowed. Add it, or send ?force=true.")
    async with state.pool.connection() as conn:
        before = await admin_settings_repo.load(conn, "ip_filter")
    stored = value.model_dump(mode="json")
    await _store(state, caller, "ip_filter", stored, before)
    return stored


async def budget_alerts(state: AdminState) -> dict[str, Any]:
    """The budget alert webhook, its secret masked."""
    async with state.pool.connection() as conn:
        stored = await admin_settings_repo.load(conn, alerts.SETTINGS_DOCUMENT)
    return settings_model.shown_budget_alerts(stored)


async def set_budget_alerts(state: AdminState, caller: Caller,
                            value: BudgetAlertSettings) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        before = await admin_settings_repo.load(conn, alerts.SETTINGS_DOCUMENT)
    sealed = settings_model.seal_budget_alerts(value, state.crypto, before)
    await _store(state, caller, alerts.SETTINGS_DOCUMENT, sealed, before)
    return settings_model.shown_budget_alerts(sealed)


def _message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
