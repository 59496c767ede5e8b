"""Management paths (/api/*, /dashboard) on the public port are served by the admin service."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

router = APIRouter()

_HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "content-length"}
# The edge's own server writes these on every answer; the admin's copies would repeat them.
_OWN_RESPONSE_HEADERS = _HOP_BY_HOP | {"date", "server"}


async def proxy(request: Request) -> Response:
    client: httpx.AsyncClient = request.app.state.edge.admin
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
    forwarded_for = request.client.host if request.client else ""
    headers.append(("x-forwarded-for", forwarded_for))
    # The URL the client used (the admin builds the single sign-on redirect_uri from it); a TLS
    # terminator in front of the edge has already said its own, which wins.
    if "x-forwarded-host" not in request.headers:
        headers.append(("x-forwarded-host", request.headers.get("host", request.url.netloc)))
    if "x-forwarded-proto" not in request.headers:
        headers.append(("x-forwarded-proto", request.url.scheme))
    upstream_request = client.build_request(request.method, request.url.path,
                                            params=request.query_params, headers=headers,
                                            content=request.stream())
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError:
        return Response(b'{"error":{"message":"The admin service is unavailable.","type":"server_error"}}',
                        status_code=503, media_type="application/json")
    response = StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                 background=BackgroundTask(upstream.aclose))
    # Raw pairs, not a dict: each Set-Cookie stays its own header line (cookie jars cannot read
    # two cookies folded into one).
    response.raw_headers.extend((name, value) for name, value in upstream.headers.raw
                                if name.decode("latin-1").lower() not in _OWN_RESPONSE_HEADERS)
    return response


for path in ("/api/{rest:path}", "/dashboard", "/dashboard/{rest:path}"):
    router.add_api_route(path, proxy, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                         include_in_schema=False)
