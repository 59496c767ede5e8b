"""Cloud sync between two deployments (the document itself: sync_doc.py).

One deployment serves (`POST /api/sync/initialize` creates its sync token; peers then use
`GET/PUT /api/cloud/config` with `Authorization: Bearer <sync token>`); another is configured
with that URL and token (`PUT /api/sync/cloud`) and pushes or pulls (`POST /api/sync/cloud`).

Concurrency: the served document has an ETag. A pull remembers it; a push sends it back as
If-Match, and the serving side refuses with 412 when its configuration changed since — the
client answers 409 and the admin pulls (or forces). The check and the write happen under one
advisory lock, so two pushes with the same ETag cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from omniroute.store import sync_repo
from omniroute_admin import audit, sync_doc
from omniroute_admin.deps import admin_state
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

manage = APIRouter(dependencies=[Depends(require_session)], tags=["sync"])
cloud = APIRouter(tags=["sync"])   # peers authenticate with the sync token, not a session
TOKEN_PREFIX = "sk-sync-"
REMOTE_TIMEOUT_S = 30.0


class InitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rotate: bool = False   # replace an existing token (peers must then be given the new one)


class RemoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=500)
    token: str = Field(min_length=len(TOKEN_PREFIX) + 16, max_length=200)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL of the other deployment, e.g. https://omniroute.example")
        return value.rstrip("/")


class SyncAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["push", "pull"]
    force: bool = False   # push without If-Match: overwrite whatever the remote has


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# --- managing sync (a session) -------------------------------------------------------------------

@manage.post("/api/sync/initialize", status_code=201, summary="Create this deployment's sync token")
async def initialize(request: Request, body: InitBody | None = None) -> dict[str, Any]:
    state = admin_state(request)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with state.pool.connection() as conn, conn.transaction():
        row = await sync_repo.state(conn)
        if row.get("token_hash") and not (body and body.rotate):
            raise HTTPException(409, "A sync token exists already; send {\"rotate\": true} to replace it.")
        await sync_repo.update(conn, token_hash=hashlib.sha256(token.encode()).hexdigest(),
                      token_enc=state.crypto.encrypt(token), token_created_at=_now())
        await audit.record(state, request, "sync.initialize", "sync-token", conn=conn,
                           detail={"rotated": bool(row.get("token_hash"))})
    return {"token": token, "endpoint": "/api/cloud/config",
            "note": "Shown once. Give it, with this deployment's URL, to the other deployment "
                    "(PUT /api/sync/cloud there)."}


@manage.get("/api/sync/cloud", summary="Sync status: served token, remote, last push / pull")
async def status(request: Request) -> dict[str, Any]:
    state = admin_state(request)
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


@manage.put("/api/sync/cloud", summary="Configure the remote deployment (URL and its sync token)")
async def configure(body: RemoteBody, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    async with state.pool.connection() as conn, conn.transaction():
        # A new remote: the ETag of the previous one means nothing there.
        await sync_repo.update(conn, remote_url=body.url, remote_token_enc=state.crypto.encrypt(body.token),
                      remote_etag=None, local_etag=None)
        await audit.record(state, request, "sync.remote", body.url, conn=conn)
    return {"configured": True, "url": body.url}


@manage.post("/api/sync/cloud", summary="Push this configuration to the remote, or pull the remote's")
async def sync(body: SyncAction, request: Request) -> Response:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        row = await sync_repo.state(conn)
    if not row.get("remote_url") or not row.get("remote_token_enc"):
        raise HTTPException(409, "No remote configured: PUT /api/sync/cloud with its url and token first.")
    url = f"{row['remote_url']}/api/cloud/config"
    token = state.crypto.decrypt(row["remote_token_enc"])
    if body.action == "pull":
        return await _pull(state, request, url, token)
    return await _push(state, request, url, token, row.get("remote_etag"), body.force)


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


async def _pull(state: AdminState, request: Request, url: str, token: str) -> Response:
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
        await audit.record(state, request, "sync.pull", url, conn=conn, before=before, after=local,
                           detail={"rows": rows, "remote_etag": remote_etag})
    await state.announce("sync")
    return JSONResponse({"pulled": True, "remoteEtag": remote_etag, "localEtag": local, "rows": rows})


async def _push(state: AdminState, request: Request, url: str, token: str, known: str | None,
                force: bool) -> Response:
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
        await audit.record(state, request, "sync.push", url, conn=conn, after=local,
                           detail={"forced": force, "remote_etag": remote_etag})
    return JSONResponse({"pushed": True, "remoteEtag": remote_etag, "localEtag": local})


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


def _now() -> datetime:
    return datetime.now(UTC)


# --- the endpoint a peer talks to (the sync token) -----------------------------------------------

async def _peer_token(state: AdminState, request: Request) -> str:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    async with state.pool.connection() as conn:
        row = await sync_repo.state(conn)
    stored = row.get("token_hash")
    if not stored:
        raise HTTPException(404, "Sync is not initialized on this deployment (POST /api/sync/initialize).")
    digest = hashlib.sha256(presented.strip().encode()).hexdigest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(digest, str(stored)):
        raise HTTPException(401, "Present this deployment's sync token: Authorization: Bearer sk-sync-…")
    request.state.actor = "sync-peer"
    return state.crypto.decrypt(row["token_enc"])


@cloud.get("/api/cloud/config", summary="The configuration document, for a peer (sync token)")
async def cloud_get(request: Request) -> Response:
    state = admin_state(request)
    token = await _peer_token(state, request)
    async with state.pool.connection() as conn:
        tables = await sync_doc.read_local(conn)
    tag = sync_doc.etag(tables)
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"etag": tag})
    return Response(orjson.dumps(sync_doc.for_transport(tables, state.crypto, token, tag)),
                    media_type="application/json", headers={"etag": tag, "cache-control": "no-store"})


@cloud.put("/api/cloud/config", summary="Replace the configuration, if unchanged since If-Match")
async def cloud_put(request: Request) -> Response:
    state = admin_state(request)
    token = await _peer_token(state, request)
    expected = request.headers.get("if-match")
    if not expected:
        raise HTTPException(428, "Send If-Match with the ETag you last saw (or * to overwrite).")
    try:
        document = orjson.loads(await request.body())
        tables = sync_doc.from_transport(document, state.crypto, token)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "The body must be a JSON configuration document.") from None
    except sync_doc.DocumentError as exc:
        raise HTTPException(400, str(exc)) from None
    async with state.pool.connection() as conn, conn.transaction():
        await sync_repo.lock_served_document(conn)
        current = sync_doc.etag(await sync_doc.read_local(conn))
        if expected != "*" and expected != current:
            return JSONResponse({"error": {"message": "The configuration changed since that ETag; "
                                           "GET it again and merge.", "status": 412}},
                                status_code=412, headers={"etag": current})
        await _apply(conn, tables)
        after = sync_doc.etag(await sync_doc.read_local(conn))
        await audit.record(state, request, "sync.receive", "config", conn=conn, before=current, after=after,
                           detail={"rows": {t: len(r) for t, r in tables.items()}})
    await state.announce("sync")
    return JSONResponse({"etag": after}, headers={"etag": after})


router = APIRouter()   # what app.py includes: both halves
router.include_router(manage)
router.include_router(cloud)
