"""The management API's docs page: the OpenAPI document rendered by a small script of ours, so
that it works offline (Swagger UI would pull its bundle from a CDN). Served at /docs on the admin
port and at /dashboard/docs, which the edge forwards on the public port."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute_admin.dashboard.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/docs")
@router.get("/dashboard/docs")
async def docs_page(request: Request) -> Response:
    return render(request, "docs.html", {"spec_url": "/api/openapi.json"})
