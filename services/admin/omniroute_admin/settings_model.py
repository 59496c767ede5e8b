"""Admin settings: the models of the validated documents in the admin_settings table (stored by
admin_settings_repo), one per name.

Edges and routers load the whole table into ConfigSnapshot.settings, so nothing here is a clear
secret (a proxy password is stored encrypted with the master key).
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omniroute.ipfilter import parse_network
from omniroute.secrets import Crypto
from omniroute.store import admin_settings_repo

M = TypeVar("M", bound=BaseModel)


class GeneralSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_name: str = Field(default="OmniRoute", min_length=1, max_length=80)
    # Off: every management route and the dashboard are open to whoever reaches them.
    require_login: bool = True
    session_ttl_hours: int = Field(default=168, ge=1, le=24 * 90)
    audit_retention_days: int = Field(default=90, ge=1, le=3650)
    # Scheduled backups: every N hours (0 = off), the newest `backup_keep` scheduled ones kept.
    backup_interval_hours: float = Field(default=24, ge=0, le=24 * 31)
    backup_keep: int = Field(default=7, ge=1, le=1000)
    # On: routers attach each chat request's payload and answer (redacted, capped at 64 KiB each)
    # to its usage event, and /api/usage/request-logs shows them. Off: nothing is captured.
    detailed_logging: bool = False


class ProxyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http://, https://, socks5:// or socks5h:// with host and port; "
                                 "user:password@ allowed (the password is stored encrypted)")
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        check_proxy_url(value)
        return value.strip()


class ProxySettings(BaseModel):
    """Outbound proxy for upstream calls: the most specific entry wins (connection, then provider,
    then global). Connections are named "provider_id:connection_name"."""

    model_config = ConfigDict(extra="forbid")

    global_: ProxyEntry | None = Field(default=None, alias="global")
    providers: dict[str, ProxyEntry] = Field(default_factory=dict)
    connections: dict[str, ProxyEntry] = Field(default_factory=dict)
    no_proxy: list[str] = Field(default_factory=list, description="hosts never proxied")


class IpFilterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    allowlist: list[str] = Field(default_factory=list, description="CIDRs; empty = everyone")
    blocklist: list[str] = Field(default_factory=list, description="CIDRs refused")
    # Header carrying the client address when a load balancer fronts the edge, e.g.
    # "x-forwarded-for" or "x-real-ip"; "" = the socket peer.
    trusted_proxy_header: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9-]*$")
    trusted_proxies: list[str] = Field(default_factory=list,
                                       description="CIDRs of proxies whose header is believed")
    apply_to_api: bool = True          # /v1, /v1beta and the Ollama routes
    apply_to_dashboard: bool = True    # /dashboard and /api management paths

    @field_validator("allowlist", "blocklist", "trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [str(parse_network(entry)) for entry in value if entry.strip()]


class BudgetAlertSettings(BaseModel):
    """Where accounting POSTs budget threshold alerts (omniroute.alerts). The secret signs them;
    stored encrypted, shown masked, and sent back masked it keeps its stored value."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(default="", max_length=2000, description='http(s) URL; "" = NATS only')
    secret: str = Field(default="", max_length=500, description="HMAC-SHA256 key of the signature")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if value and (parts.scheme not in {"http", "https"} or not parts.hostname):
            raise ValueError("the webhook URL must be http:// or https:// with a host")
        return value


def seal_budget_alerts(value: BudgetAlertSettings, crypto: Crypto,
                       previous: dict[str, Any]) -> dict[str, Any]:
    """The stored form (omniroute.alerts.webhook_target reads it): the secret encrypted."""
    if value.secret == MASK:
        sealed = previous.get("secret_enc")
    else:
        sealed = crypto.encrypt(value.secret) if value.secret else None
    return {"webhook_url": value.webhook_url, "secret_enc": sealed}


def shown_budget_alerts(stored: dict[str, Any]) -> dict[str, Any]:
    return {"webhook_url": stored.get("webhook_url") or "",
            "secret": MASK if stored.get("secret_enc") else ""}


SCHEMES = {"http", "https", "socks5", "socks5h"}


def check_proxy_url(value: str) -> None:
    parts = urlsplit(value.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError(f"proxy scheme must be one of {sorted(SCHEMES)}, not {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the proxy port is not a number") from None
    if not parts.hostname or port is None:
        raise ValueError("a proxy URL needs a host and a port, e.g. socks5://10.0.0.2:1080")


DOCUMENTS: dict[str, type[BaseModel]] = {
    "general": GeneralSettings, "proxy": ProxySettings, "ip_filter": IpFilterSettings,
    "budget_alerts": BudgetAlertSettings}


async def load(conn: AsyncConnection[Any], name: str, model: type[M]) -> M:
    """The stored document `name`, validated (defaults where nothing is stored)."""
    return model.model_validate(await admin_settings_repo.load(conn, name))


# --- proxy credentials: encrypted at rest, masked in answers ------------------------------------

def _split_password(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), parts.password


def seal_proxies(value: ProxySettings, crypto: Crypto, previous: dict[str, Any]) -> dict[str, Any]:
    """The stored form: each URL without its password, the password as `password_enc`. An entry
    sent back masked (the "…" the API shows) keeps the stored password."""
    def seal(entry: ProxyEntry, before: dict[str, Any] | None) -> dict[str, Any]:
        bare, password = _split_password(entry.url)
        stored: dict[str, Any] = {"url": bare, "enabled": entry.enabled}
        if password == MASK and before and before.get("url") == bare:
            stored["password_enc"] = before.get("password_enc")
        elif password:
            stored["password_enc"] = crypto.encrypt(password)
        return stored

    prev_global = previous.get("global")
    return {
        "global": seal(value.global_, prev_global) if value.global_ else None,
        "providers": {k: seal(v, previous.get("providers", {}).get(k)) for k, v in value.providers.items()},
        "connections": {k: seal(v, previous.get("connections", {}).get(k))
                        for k, v in value.connections.items()},
        "no_proxy": value.no_proxy,
    }


MASK = "…"


def _show(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if not entry:
        return None
    url = entry["url"]
    if entry.get("password_enc"):
        parts = urlsplit(url)
        url = urlunsplit((parts.scheme, parts.netloc.replace("@", f":{MASK}@", 1), parts.path,
                          parts.query, parts.fragment))
    return {"url": url, "enabled": entry.get("enabled", True)}


def shown_proxies(stored: dict[str, Any]) -> dict[str, Any]:
    return {"global": _show(stored.get("global")),
            "providers": {k: _show(v) for k, v in (stored.get("providers") or {}).items()},
            "connections": {k: _show(v) for k, v in (stored.get("connections") or {}).items()},
            "no_proxy": stored.get("no_proxy") or []}


def clear_proxy_url(entry: dict[str, Any], crypto: Crypto) -> str:
    """The usable URL of a stored entry (for the test call; an executor does the same)."""
    url: str = entry["url"]
    if not entry.get("password_enc"):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.replace("@", ":" + crypto.decrypt(entry["password_enc"]) + "@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
