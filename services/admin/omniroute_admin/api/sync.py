"""Cloud sync over HTTP (the use cases: services/sync.py). Managing sync needs a session:
`POST /api/sync/initialize`, `GET/PUT/POST /api/sync/cloud`. A peer talks to
`GET/PUT /api/cloud/config` with `Authorization: Bearer <sync token>` instead."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from omniroute_admin import access
from omniroute_admin.access import ROLE_EXTENSION, requires
from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.services import sync
from omniroute_admin.sessions import require_session

manage = APIRouter(dependencies=[Depends(require_session)], tags=["sync"])
cloud = APIRouter(tags=["sync"])   # peers authenticate with the sync token, not a session
SYNC_PEER = {ROLE_EXTENSION: "sync-peer"}   # documented: no role, the peer's sync token


class InitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rotate: bool = False   # replace an existing token (peers must then be given the new one)


class RemoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=500)
    token: str = Field(min_length=len(sync.TOKEN_PREFIX) + 16, max_length=200)

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


@manage.post("/api/sync/initialize", status_code=201, openapi_extra=requires("owner"),
              summary="Create this deployment's sync token")
async def initialize(state: StateDep, caller: CallerDep, body: InitBody | None = None) -> dict[str, Any]:
    return await sync.initialize(state, caller, rotate=bool(body and body.rotate))


@manage.get("/api/sync/cloud", summary="Sync status: served token, remote, last push / pull")
async def status(state: StateDep) -> dict[str, Any]:
    return await sync.status(state)


@manage.put("/api/sync/cloud", openapi_extra=requires("owner"),
             summary="Configure the remote deployment (URL and its sync token)")
async def configure(body: RemoteBody, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await sync.configure(state, caller, body.url, body.token)
    return {"configured": True, "url": body.url}


@manage.post("/api/sync/cloud", openapi_extra=requires("owner"),
              summary="Push this configuration to the remote, or pull the remote's")
async def run(body: SyncAction, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    return await sync.run(state, caller, body.action, body.force)


async def _peer(request: Request, state: StateDep) -> str:
    """Dependency of the peer routes: the sync token the peer presented (the caller is then the
    peer, in the audit)."""
    token = await sync.peer_token(state, request.headers.get("authorization", ""))
    access.set_principal(request, access.SYNC_PEER)
    return token


PeerToken = Annotated[str, Depends(_peer)]   # before any CallerDep: it sets the actor


@cloud.get("/api/cloud/config", openapi_extra=SYNC_PEER, summary="The configuration document, for a peer (sync token)")
async def cloud_get(request: Request, state: StateDep, token: PeerToken) -> Response:
    tag, document = await sync.served_document(state, token)
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"etag": tag})
    return Response(orjson.dumps(document), media_type="application/json",
                    headers={"etag": tag, "cache-control": "no-store"})


@cloud.put("/api/cloud/config", openapi_extra=SYNC_PEER,
           summary="Replace the configuration, if unchanged since If-Match")
async def cloud_put(request: Request, state: StateDep, token: PeerToken, caller: CallerDep) -> Response:
    expected = request.headers.get("if-match")
    if not expected:
        raise HTTPException(428, "Send If-Match with the ETag you last saw (or * to overwrite).")
    received = await sync.receive(state, caller, token, expected, await request.body())
    if not received.applied:
        return JSONResponse({"error": {"message": "The configuration changed since that ETag; "
                                       "GET it again and merge.", "status": 412}},
                            status_code=412, headers={"etag": received.etag})
    return JSONResponse({"etag": received.etag}, headers={"etag": received.etag})


router = APIRouter()   # what the app includes: both halves
router.include_router(manage)
router.include_router(cloud)
