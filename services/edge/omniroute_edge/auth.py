"""Who is calling: the API key from the headers, checked against the in-memory snapshot."""

from __future__ import annotations

from starlette.requests import Request

from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.secrets import hash_api_key


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
                            "<key>' or 'x-api-key: <key>'.")
        return None
    found = snapshot.keys_by_hash.get(hash_api_key(key))
    if found is None:
        raise AuthError("Incorrect API key provided.")
    if not found.usable():
        raise AuthError("This API key is disabled or expired.")
    return found
