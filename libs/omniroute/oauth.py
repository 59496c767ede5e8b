"""OAuth connections: what the admin (authorization) and the router (refresh) share.

An OAuth connection keeps its access token where an API key would be (`api_key_enc`,
encrypted) and the rest under `settings.oauth`:
`{token_url, client_id, client_secret_enc?, token_format?, refresh_token_enc, expires_at, status,
error}`. A subscription provider's type names its OAuth client (catalog.yaml `oauth`); the
provider's own `settings.oauth` overrides it key by key (`client_config`). The router keeps
the freshest tokens in Redis (`<env>:oauth:<connection id>`) and writes them back to Postgres,
so that a restart or a flushed Redis never falls back to a refresh token the provider has
already rotated away."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection

from omniroute.catalog import provider_type
from omniroute.secrets import Crypto
from omniroute.store import config_repo

OK, FAILED = "ok", "refresh_failed"
REFRESH_SKEW_S = 60.0  # refresh this long before the access token expires
DEFAULT_LIFETIME_S = 3600.0  # a token answer without expires_in that can be refreshed
# A token that comes with neither expires_in nor a refresh token lives until revoked (GitHub's
# OAuth apps): it is used until the provider answers 401.
UNTIL_REVOKED_S = 10 * 365 * 86400.0


def client_config(type_name: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    """The OAuth client of a provider: its type's preset, overridden by `settings.oauth`."""
    kind = provider_type(type_name)
    own = (settings or {}).get("oauth")
    return {**(kind.oauth if kind else {}), **(own if isinstance(own, dict) else {})}


def id_token_claim(answer: dict[str, Any], path: list[str]) -> str:
    """A claim of the token answer's id_token (a path of keys), "" when absent. Not verified:
    the token came straight from the provider's token endpoint over TLS, and it only names the
    account to send calls for (never who may use the gateway)."""
    token = answer.get("id_token")
    if not isinstance(token, str) or token.count(".") != 2:
        return ""
    payload = token.split(".")[1]
    try:
        value: Any = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return ""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_s256(verifier)


def challenge_s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class TokenState:
    """The live tokens of one connection (secrets encrypted, also in Redis)."""

    access_enc: str
    refresh_enc: str
    expires_at: float
    status: str = OK
    error: str = ""

    def dumps(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: bytes | str) -> TokenState:
        data = orjson.loads(raw)
        return cls(**{k: data[k] for k in ("access_enc", "refresh_enc", "expires_at", "status", "error")
                      if k in data})

    def fresh(self, now: float | None = None) -> bool:
        return self.expires_at - (now or time.time()) > REFRESH_SKEW_S


def from_token_answer(answer: dict[str, Any], crypto: Crypto, previous_refresh_enc: str = "") -> TokenState:
    """A token endpoint's JSON → state. A provider that does not rotate refresh tokens sends
    none back: the previous one stays valid."""
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise ValueError("the token answer has no access_token")
    refresh = answer.get("refresh_token")
    expires_in = answer.get("expires_in")
    has_refresh = (isinstance(refresh, str) and bool(refresh)) or bool(previous_refresh_enc)
    if isinstance(expires_in, int | float):
        lifetime = float(expires_in)
    else:
        lifetime = DEFAULT_LIFETIME_S if has_refresh else UNTIL_REVOKED_S
    return TokenState(access_enc=crypto.encrypt(access),
                      refresh_enc=crypto.encrypt(refresh) if isinstance(refresh, str) and refresh
                      else previous_refresh_enc,
                      expires_at=time.time() + lifetime)


async def persist(conn: AsyncConnection[Any], connection_id: str, state: TokenState) -> None:
    """Write the state back to the connection row (merged into `settings.oauth`)."""
    oauth = {"refresh_token_enc": state.refresh_enc, "expires_at": state.expires_at,
             "status": state.status, "error": state.error}
    await config_repo.save_oauth_token(conn, connection_id, state.access_enc, oauth)


def redis_key(env: str, connection_id: str) -> str:
    return f"{env}:oauth:{connection_id}"


def lock_key(env: str, connection_id: str) -> str:
    return f"{env}:oauth-lock:{connection_id}"
