"""Secrets at rest: provider credentials encrypted with the master key, API keys hashed."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

API_KEY_PREFIX = "sk-omni-"


class Crypto:
    """Encrypts provider credentials with a Fernet key derived from the master key."""

    def __init__(self, master_key: str) -> None:
        if not master_key:
            raise ValueError("OMNIROUTE_MASTER_KEY is not set: provider credentials cannot be "
                             "encrypted or read")
        self._fernet = Fernet(_fernet_key(master_key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("a stored credential cannot be decrypted with this master key") from exc


def _fernet_key(master_key: str) -> bytes:
    """Accept a Fernet key as is; stretch any other string to one (it should be long and random)."""
    try:
        if len(base64.urlsafe_b64decode(master_key.encode())) == 32:
            return master_key.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(master_key.encode()).digest())


def generate_master_key() -> str:
    return Fernet.generate_key().decode()


def hash_api_key(key: str) -> str:
    """API keys are 256-bit random tokens, so a plain SHA-256 is enough (no stretching)."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def key_prefix(key: str) -> str:
    return key[: len(API_KEY_PREFIX) + 4]


def mask(secret: str | None) -> str | None:
    """What the API shows of a credential: enough to recognise it, never enough to use it."""
    if not secret:
        return None
    return secret[:4] + "…" + secret[-4:] if len(secret) > 12 else "…"
