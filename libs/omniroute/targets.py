"""What the executor is told about one account: URL, credential and the auth style it goes in
(catalog.yaml, or the provider's `settings.auth`), URL style (Azure deployments), and the
outbound proxy. One builder for every caller: the router's requests, and the admin's provider
tests and model listings (which must take the same proxy)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from omniroute import settings
from omniroute.catalog import auth_style, provider_type
from omniroute.config.snapshot import Connection, Provider
from omniroute.secrets import Crypto
from omniroute.v1 import executor_pb2

log = logging.getLogger("omniroute.targets")


class AdminSettings(Protocol):
    """Where the admin's settings documents are (a ConfigSnapshot, in the router): `proxy`
    holds the stored outbound proxies."""

    @property
    def settings(self) -> dict[str, Any]: ...


@functools.cache
def process_crypto() -> Crypto | None:
    """The master key of this process (to open stored proxy passwords); None without one."""
    master_key = settings.load().master_key
    return Crypto(master_key) if master_key else None


def params(provider: Provider) -> dict[str, str]:
    kind = provider_type(provider.type)
    out: dict[str, str] = {}
    if kind is not None:
        out["capabilities"] = ",".join(kind.capabilities)
        out["list_models"] = kind.list_models
        if kind.url_style:
            out["url_style"] = kind.url_style
        if kind.api_version:
            out["api_version"] = kind.api_version
    version = provider.settings.get("api_version")
    if isinstance(version, str) and version:
        out["api_version"] = version
    return out


# The API version segment a family's URLs start with, which its SDKs add to the base URL
# themselves (Anthropic's SDK: https://api.anthropic.com + /v1/messages; Google's:
# https://generativelanguage.googleapis.com + /v1beta/models/…). Users copy either form.
_VERSION_SEGMENT = {"anthropic": "v1", "gemini": "v1beta"}
_A_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")


def versioned_base_url(family: str, base_url: str) -> str:
    """`base_url` ending in an API version segment: the family's own appended when the last
    path segment is none (`…/v1`, `…/v1beta`, `…/v1alpha` are kept as given)."""
    segment = _VERSION_SEGMENT.get(family)
    base = base_url.rstrip("/")
    if not segment or not base:
        return base
    last = urlsplit(base).path.rsplit("/", 1)[-1]
    return base if _A_VERSION.fullmatch(last) else f"{base}/{segment}"


def build(stored: AdminSettings, provider: Provider, connection: Connection, model: str,
          timeout_s: float, crypto: Crypto | None, api_key: str | None = None) -> executor_pb2.Target:
    own = connection.settings.get("headers")
    kind = provider_type(provider.type)
    # The type's headers (a subscription API's required ones), then the connection's own.
    headers = {**(kind.headers if kind else {}), **(own if isinstance(own, dict) else {})}
    return executor_pb2.Target(
        provider_id=provider.id, provider_type=provider.type, family=provider.family,
        base_url=versioned_base_url(provider.family, provider.base_url),
        api_key=connection.api_key if api_key is None else api_key,
        connection=connection.name, model=model, timeout_s=timeout_s,
        headers=headers,
        auth=auth_style(provider.type, provider.settings), params=params(provider),
        proxy_url=proxy_for(stored, provider, connection, crypto))


def proxy_for(stored: AdminSettings, provider: Provider, connection: Connection,
              crypto: Crypto | None) -> str:
    """The most specific proxy wins: the connection's own `settings.proxy`, then the admin's
    stored proxies (connection "provider:name", provider, global); `no_proxy` hosts go direct."""
    proxies: dict[str, Any] = stored.settings.get("proxy") or {}
    host = urlsplit(provider.base_url).hostname or ""
    if host and host in (proxies.get("no_proxy") or []):
        return ""
    own = connection.settings.get("proxy")
    if isinstance(own, str) and own:
        return own
    if isinstance(own, dict) and own.get("url") and own.get("enabled", True):
        return _clear(own, crypto)
    for entry in ((proxies.get("connections") or {}).get(f"{provider.id}:{connection.name}"),
                  (proxies.get("providers") or {}).get(provider.id), proxies.get("global")):
        if isinstance(entry, dict) and entry.get("url") and entry.get("enabled", True):
            return _clear(entry, crypto)
    return ""


def _clear(entry: dict[str, Any], crypto: Crypto | None) -> str:
    """A stored entry's URL with its password put back (stored encrypted as `password_enc`)."""
    url = str(entry["url"])
    secret = entry.get("password_enc")
    if not secret or crypto is None:
        return url
    try:
        password = crypto.decrypt(str(secret))
    except ValueError:
        log.error("a stored proxy password cannot be decrypted with this master key; proxy skipped")
        return ""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("@", f":{password}@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
