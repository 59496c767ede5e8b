"""The configuration document that two deployments exchange in cloud sync.

What travels: teams, providers and their connections, MCP servers, API keys (hashes and prefixes only: the clear
key never existed after creation), combos, aliases and the routing settings (resilience,
fallback, cache, prompts, policies). What does not: admin_settings (the login switch, sessions,
IP filter, backup schedule and proxy credentials are choices of each deployment — copying a peer's
`require_login: false` would open this dashboard), usage, the audit log, the password.

Credentials: each deployment encrypts them with its own master key, so a stored `*_enc` value
means nothing to the peer. For the wire they are decrypted and encrypted again with a key
derived from the sync token that both ends know (HKDF-SHA256, a fresh salt per document), so
they are never in clear on the wire even without TLS, and a peer without the token learns
nothing. The receiver re-encrypts them with its own master key.

The ETag is a sha256 over the local, canonical form (stored ciphertexts, no timestamps): any
change through any endpoint changes it, which is what If-Match needs to detect a concurrent edit.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import AsyncConnection

from omniroute.secrets import Crypto
from omniroute.store import config_repo, database_repo

FORMAT = "omniroute-config"
VERSION = 1
# Parents before children (connections reference providers). Key: the column to sort rows by.
# Teams first: keys name their team. (People are not synced: a key's person is kept only where
# that person exists on the receiving side.)
# MCP servers after connections (an OAuth connection they name); their *_enc credentials travel
# re-sealed like connections'.
TABLES = {"teams": "id", "providers": "id", "connections": "id", "mcp_servers": "id", "api_keys": "id",
          "aliases": "alias", "combos": "name", "routing_settings": "key"}
# A document from a deployment before teams has no "teams": its keys land in the team "default";
# one from before the MCP gateway has no "mcp_servers": the local ones are kept.
OPTIONAL_TABLES = frozenset({"teams", "mcp_servers"})
SKIP_COLUMNS = frozenset({"created_at", "updated_at"})
ENCRYPTED_SUFFIX = "_enc"   # convention of the schema: a column holding a master-key ciphertext


class DocumentError(ValueError):
    """The document cannot be applied here; the message says why (a 400 / 422)."""


def transport_cipher(token: str, salt: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
               info=b"omniroute-sync-transport-v1").derive(token.encode())
    return Fernet(base64.urlsafe_b64encode(key))


async def read_local(conn: AsyncConnection[Any]) -> dict[str, list[dict[str, Any]]]:
    """The configuration tables as stored (ciphertexts of the master key included)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, order in TABLES.items():
        rows = await database_repo.rows_of(conn, table, order)
        tables[table] = [{k: v for k, v in row.items() if k not in SKIP_COLUMNS} for row in rows]
    return tables


def etag(tables: dict[str, list[dict[str, Any]]]) -> str:
    canonical = orjson.dumps(tables, option=orjson.OPT_SORT_KEYS)
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'


def _reseal(tables: dict[str, list[dict[str, Any]]], open_: Any, seal: Any) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table, rows in tables.items():
        out[table] = [{k: (seal(open_(v)) if k.endswith(ENCRYPTED_SUFFIX) and isinstance(v, str) else v)
                       for k, v in row.items()} for row in rows]
    return out


def for_transport(tables: dict[str, list[dict[str, Any]]], crypto: Crypto, token: str,
                  tag: str) -> dict[str, Any]:
    """The wire document: credentials re-encrypted from the master key to the token's key."""
    salt = os.urandom(16)
    cipher = transport_cipher(token, salt)
    sealed = _reseal(tables, crypto.decrypt, lambda clear: cipher.encrypt(clear.encode()).decode())
    return {"format": FORMAT, "version": VERSION, "etag": tag,
            "transport": {"kdf": "hkdf-sha256", "cipher": "fernet",
                          "salt": base64.urlsafe_b64encode(salt).decode()},
            "tables": sealed}


def from_transport(document: Any, crypto: Crypto, token: str) -> dict[str, list[dict[str, Any]]]:
    """Check a wire document and re-encrypt its credentials with this deployment's master key."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DocumentError("not an OmniRoute configuration document (format)")
    if document.get("version") != VERSION:
        raise DocumentError(f"document version {document.get('version')!r} is not supported "
                            f"(expected {VERSION})")
    tables = document.get("tables")
    if not isinstance(tables, dict) or not set(TABLES) - OPTIONAL_TABLES <= set(tables) <= set(TABLES):
        raise DocumentError(f"tables must be exactly {sorted(TABLES)}")
    for table, rows in tables.items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DocumentError(f"tables.{table} must be a list of objects")
    try:
        salt = base64.urlsafe_b64decode(str((document.get("transport") or {}).get("salt", "")))
    except ValueError:
        raise DocumentError("transport.salt is not base64") from None
    if len(salt) < 16:
        raise DocumentError("transport.salt is missing")
    cipher = transport_cipher(token, salt)

    def open_(value: str) -> str:
        try:
            return cipher.decrypt(value.encode()).decode()
        except InvalidToken:
            raise DocumentError("a credential cannot be decrypted with the sync token "
                                "(was the document sealed with another token?)") from None

    return _reseal(tables, open_, crypto.encrypt)


async def replace_local(conn: AsyncConnection[Any], tables: dict[str, list[dict[str, Any]]]) -> None:
    """Replace the configuration tables in the caller's transaction: all or nothing."""
    try:
        await config_repo.replace_tables(conn, {table: tables[table] for table in TABLES if table in tables})
    except config_repo.UnknownColumns as exc:
        raise DocumentError(str(exc)) from None
