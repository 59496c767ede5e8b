"""/api/settings*: general settings, the login switch, outbound proxies (and a tunnel test), the
IP filter and the budget alert webhook (the use cases: services/settings.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from omniroute_admin.access import requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import settings
from omniroute_admin.sessions import require_session
from omniroute_admin.settings_model import BudgetAlertSettings, IpFilterSettings, ProxySettings

router = APIRouter(dependencies=[Depends(require_session)], tags=["settings"])


class RequireLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    require_login: bool = Field(alias="requireLogin")


class ProxyTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, description="a proxy URL; omitted: the stored one named by scope")
    scope: str = Field(default="global", description='"global", "provider:<id>" or "connection:<p:c>"')
    target: str = Field(default="api.openai.com:443", pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
    timeout_s: float = Field(default=5.0, gt=0, le=30)


@router.get("/api/settings", summary="General settings")
async def get_general(state: StateDep) -> dict[str, Any]:
    return (await settings.general(state)).model_dump()


@router.put("/api/settings", summary="Change general settings (fields not sent keep their value)")
async def put_general(body: dict[str, Any], state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return (await settings.change_general(state, caller, body)).model_dump()


@router.get("/api/settings/require-login", summary="Is a login needed for management?")
async def get_require_login(state: StateDep) -> dict[str, bool]:
    return {"requireLogin": (await settings.general(state)).require_login}


@router.put("/api/settings/require-login", openapi_extra=requires("owner"),
            summary="Switch the management login on or off")
async def put_require_login(body: RequireLogin, state: StateDep, caller: CallerDep) -> dict[str, bool]:
    await settings.change_general(state, caller, {"require_login": body.require_login})
    return {"requireLogin": body.require_login}


@router.get("/api/settings/proxy", summary="Outbound proxies (passwords masked)")
async def get_proxy(state: StateDep) -> dict[str, Any]:
    return await settings.proxies(state)


@router.put("/api/settings/proxy", summary="Set the outbound proxies (global, per provider, per connection)")
async def put_proxy(body: ProxySettings, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await settings.set_proxies(state, caller, body)


@router.post("/api/settings/proxy/test", summary="Open a tunnel through a proxy to a target")
async def test_proxy(body: ProxyTest, state: StateDep) -> dict[str, Any]:
    return await settings.test_proxy(state, body.url, body.scope, body.target, body.timeout_s)


@router.get("/api/settings/ip-filter", summary="IP allowlist / blocklist")
async def get_ip_filter(state: StateDep) -> dict[str, Any]:
    return (await settings.ip_filter(state)).model_dump()


@router.put("/api/settings/ip-filter", summary="Set the IP allowlist / blocklist (enforced by the edge)")
async def put_ip_filter(body: IpFilterSettings, state: StateDep, caller: CallerDep,
                        force: bool = False) -> dict[str, Any]:
    return await settings.set_ip_filter(state, caller, body, force)


@router.get("/api/settings/budget-alerts", summary="Budget alert webhook (secret masked)")
async def get_budget_alerts(state: StateDep) -> dict[str, Any]:
    return await settings.budget_alerts(state)


@router.put("/api/settings/budget-alerts",
            summary="Set where budget threshold alerts are POSTed and the secret that signs them")
async def put_budget_alerts(body: BudgetAlertSettings, state: StateDep,
                            caller: CallerDep) -> dict[str, Any]:
    return await settings.set_budget_alerts(state, caller, body)
