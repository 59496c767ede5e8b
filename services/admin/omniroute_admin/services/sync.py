"""Cloud sync between two deployments (the document itself: features/sync_doc.py).

One deployment serves (initialize creates its sync token; peers then GET / PUT its document with
that token); another is configured with that URL and token and pushes or pulls.

Concurrency: the served document has an ETag. A pull remembers it; a push sends it back as
If-Match, and the serving side refuses with 412 when its configuration changed since — the
client answers 409 and the admin pulls (or forces). The check and the write happen under one
advisory lock, so two pushes with the same ETag cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import HTTPException
from psycopg import AsyncConnection

from omniroute.store import sync_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import sync_doc
from omniroute_admin.state import AdminState

TOKEN_PREFIX = "sk-sync-"
REMOTE_TIMEOUT_S = 30.0


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _now() -> datetime:
    return datetime.now(UTC)


# --- managing sync (a session) -------------------------------------------------------------------

async def initialize(state: AdminState, caller: Caller, rotate: bool) -> dict[str, Any]:
    """Create this deployment's sync token (shown once); `rotate` replaces an existing one."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with state.pool.connection() as conn, conn.transaction():
        row = await sync_repo.state(conn)
        if row.get("token_hash") and not rotate:
            raise HTTPException(409, "A sync token exists already; send {\"rotate\": true} to replace it.")
        await sync_repo.update(conn, token_hash=hashlib.sha256(token.encode()).hexdigest(),
                               token_enc=state.crypto.encrypt(token), token_created_at=_now())
        await audit.record(state, caller, "sync.initialize", "sync-token", conn=conn,
                           detail={"rotated": bool(row.get("token_hash"))})
    return {"token": token, "endpoint": "/api/cloud/config",
            "note": "Shown once. Give it, with this deployment's URL, to the other deployment "
                    "(PUT /api/sync/cloud there)."}


async def status(state: AdminState) -> dict[str, Any]:
    """Served token, remote, last push / pull, and whether the configuration changed since."""
    async with state.pool.connection() as conn:
        row = await sync_repo.state(conn)
        local = sync_doc.etag(await sync_doc.read_local(conn))
    synced = row.get("local_etag")
    return {"serving": {"enabled": bool(row.get("token_hash")),
                        "createdAt": _iso(row.get("token_created_at"))},
            "remote": {"configured": bool(row.get("remote_url")), "url": row.get("remote_url"),
                       "etag": row.get("remote_etag"), "lastPushAt": _iso(row.get("last_push_at")),
                       "lastPullAt": _iso(row.get("last_pull_at"))},
            "local": {"etag": local,
                      "changedSinceSync": synced is not None and synced != local}}


async def configure(state: AdminState, caller: Caller, url: str, token: str) -> None:
    """The remote deployment: its URL and its sync token."""
    async with state.pool.connection() as conn, conn.transaction():
        # A new remote: the ETag of the previous one means nothing there.
        await sync_repo.update(conn, remote_url=url, remote_token_enc=state.crypto.encrypt(token),
                               remote_etag=None, local_etag=None)
        await audit.record(state, caller, "sync.remote", url, conn=conn)


async def run(state: AdminState, caller: Caller, action: str, force: bool) -> dict[str, Any]:
    """"push" this configuration to the remote, or "pull" the remote's."""
    async with state.pool.connection() as conn:
        row = await sync_repo.state(conn)
    if not row.get("remote_url") or not row.get("remote_token_enc"):
        raise HTTPException(409, "No remote configured: PUT /api/sync/cloud with its url and token first.")
    url = f"{row['remote_url']}/api/cloud/config"
    token = state.crypto.decrypt(row["remote_token_enc"])
    if action == "pull":
        return await _pull(state, caller, url, token)
    return await _push(state, caller, url, token, row.get("remote_etag"), force)


async def _remote(method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    try:
        async with httpx.AsyncClient(timeout=REMOTE_TIMEOUT_S) as client:
            answer = await client.request(method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise HTTPException(502, f"The remote deployment cannot be reached: {type(exc).__name__}") from None
    if answer.status_code in {401, 403}:
        raise HTTPException(502, "The remote deployment refused the sync token.")
    return answer


async def _pull(state: AdminState, caller: Caller, url: str, token: str) -> dict[str, Any]:
    answer = await _remote("GET", url, token)
    if answer.status_code != 200:
        raise HTTPException(502, f"The remote answered {answer.status_code}: {answer.text[:200]}")
    try:
        tables = sync_doc.from_transport(answer.json(), state.crypto, token)
    except (sync_doc.DocumentError, ValueError) as exc:
        raise HTTPException(502, f"The remote's document cannot be used: {exc}") from None
    remote_etag = answer.headers.get("etag")
    rows = {t: len(r) for t, r in tables.items()}
    async with state.pool.connection() as conn, conn.transaction():
        before = sync_doc.etag(await sync_doc.read_local(conn))
        await _apply(conn, tables)
        local = sync_doc.etag(await sync_doc.read_local(conn))
        await sync_repo.update(conn, remote_etag=remote_etag, last_pull_at=_now(), local_etag=local)
        await audit.record(state, caller, "sync.pull", url, conn=conn, before=before, after=local,
                           detail={"rows": rows, "remote_etag": remote_etag})
    await state.announce("sync")
    return {"pulled": True, "remoteEtag": remote_etag, "localEtag": local, "rows": rows}


async def _push(state: AdminState, caller: Caller, url: str, token: str, known: str | None,
                force: bool) -> dict[str, Any]:
    if not known and not force:
        raise HTTPException(409, "This deployment has not synced with the remote yet: pull first, or "
                                 "push with {\"force\": true} to overwrite the remote's configuration.")
    async with state.pool.connection() as conn:
        tables = await sync_doc.read_local(conn)
    local = sync_doc.etag(tables)
    document = sync_doc.for_transport(tables, state.crypto, token, local)
    answer = await _remote("PUT", url, token, content=orjson.dumps(document),
                           headers={"content-type": "application/json",
                                    "if-match": "*" if force else str(known)})
    if answer.status_code == 412:
        raise HTTPException(409, "The remote's configuration changed since this deployment last synced "
                                 "(ETag mismatch): pull first, or push with {\"force\": true}.")
    if answer.status_code != 200:
        raise HTTPException(502, f"The remote answered {answer.status_code}: {answer.text[:200]}")
    remote_etag = answer.headers.get("etag")
    async with state.pool.connection() as conn, conn.transaction():
        await sync_repo.update(conn, remote_etag=remote_etag, last_push_at=_now(), local_etag=local)
        await audit.record(state, caller, "sync.push", url, conn=conn, after=local,
                           detail={"forced": force, "remote_etag": remote_etag})
    return {"pushed": True, "remoteEtag": remote_etag, "localEtag": local}


async def _apply(conn: AsyncConnection[Any], tables: dict[str, list[dict[str, Any]]]) -> None:
    try:
        async with conn.transaction():
            await sync_doc.replace_local(conn, tables)
    except sync_doc.DocumentError as exc:
        raise HTTPException(422, str(exc)) from None
    except Exception as exc:   # a constraint the document breaks: nothing was changed
        diag = getattr(exc, "diag", None)
        reason = getattr(diag, "message_primary", None) or str(exc)
        raise HTTPException(422, f"The document does not fit this database: {reason}") from None


# --- the side a peer talks to (the sync token) ---------------------------------------------------

async def peer_token(state: AdminState, authorization: str) -> str:
    """The sync token, when `authorization` presents it (else 401, or 404 while not serving)."""
    scheme, _, presented = authorization.partition(" ")
    async with state.pool.connection() as conn:
        row = await sync_repo.state(conn)
    stored = row.get("token_hash")
    if not stored:
        raise HTTPException(404, "Sync is not initialized on this deployment (POST /api/sync/initialize).")
    digest = hashlib.sha256(presented.strip().encode()).hexdigest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(digest, str(stored)):
        raise HTTPException(401, "Present this deployment's sync token: Authorization: Bearer sk-sync-…")
    return state.crypto.decrypt(row["token_enc"])


async def served_document(state: AdminState, token: str) -> tuple[str, dict[str, Any]]:
    """(ETag, the wire document sealed with the token)."""
    async with state.pool.connection() as conn:
        tables = await sync_doc.read_local(conn)
    tag = sync_doc.etag(tables)
    return tag, sync_doc.for_transport(tables, state.crypto, token, tag)


@dataclass(frozen=True, slots=True)
class Received:
    etag: str          # the configuration's ETag now
    applied: bool      # False: it changed since If-Match (nothing written)


async def receive(state: AdminState, caller: Caller, token: str, expected: str, body: bytes) -> Received:
    """Replace the configuration with a peer's document, if unchanged since `expected` ("*":
    whatever it is)."""
    try:
        tables = sync_doc.from_transport(orjson.loads(body), state.crypto, token)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "The body must be a JSON configuration document.") from None
    except sync_doc.DocumentError as exc:
        raise HTTPException(400, str(exc)) from None
    async with state.pool.connection() as conn, conn.transaction():
        await sync_repo.lock_served_document(conn)
        current = sync_doc.etag(await sync_doc.read_local(conn))
        if expected != "*" and expected != current:
            return Received(current, applied=False)
        await _apply(conn, tables)
        after = sync_doc.etag(await sync_doc.read_local(conn))
        await audit.record(state, caller, "sync.receive", "config", conn=conn, before=current, after=after,
                           detail={"rows": {t: len(r) for t, r in tables.items()}})
    await state.announce("sync")
    return Received(after, applied=True)
