"""Who is calling: the API key from the headers, checked against the in-memory snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.secrets import hash_api_key

UNKNOWN_KEY = "Incorrect API key provided."


class AuthError(Exception):
    """A refused caller. `reason`: why, for the refusal's log line (missing_key, unknown_key,
    key_rotated, key_revoked, key_expired, key_disabled); `key`: the key the secret named, when
    it named one (never shown to the caller beyond the message)."""

    def __init__(self, message: str, reason: str = "unknown_key", key: ApiKey | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.key = key


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for header in ("x-api-key", "x-goog-api-key"):
        value = request.headers.get(header)
        if value:
            return value.strip()
    return request.query_params.get("key")  # Gemini clients may pass ?key=


def authenticate(request: Request, snapshot: ConfigSnapshot, required: bool) -> ApiKey | None:
    """The caller's key, or None when keys are optional and none was given."""
    key = presented_key(request)
    if key is None:
        if required:
            raise AuthError("You didn't provide an API key. Provide it as 'Authorization: Bearer "
                            "<key>' or 'x-api-key: <key>'.", "missing_key")
        return None
    found = snapshot.keys_by_hash.get(hash_api_key(key))
    if found is None:
        raise AuthError(UNKNOWN_KEY)
    refusal = refusal_of(found, datetime.now(UTC))
    if refusal is not None:
        raise refusal
    return found


def refusal_of(key: ApiKey, now: datetime) -> AuthError | None:
    """Why the snapshot's `key` may not be used now (ApiKey.refusal), as the caller is told: a
    rotated-out secret like an unknown one."""
    reason = key.refusal(now)
    return None if reason is None else AuthError(_MESSAGES[reason], reason, key)


_MESSAGES = {"key_rotated": UNKNOWN_KEY, "key_revoked": "API key revoked",
             "key_expired": "API key expired", "key_disabled": "API key disabled"}
