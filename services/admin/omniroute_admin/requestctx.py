"""Who is calling and which request this is: the client IP and request id of a management call."""

from __future__ import annotations

import uuid

from starlette.requests import Request

# Set by the edge's ip_filter middleware on every request it forwards, after it has worked out the
# client's address (trusted-proxy header rules) and dropped any value the client sent itself.
CLIENT_IP_HEADER = "x-omniroute-client-ip"


def client_ip(request: Request) -> str:
    """The caller's address. The admin port is reached only through the edge (or locally), so the
    edge's header is trusted; failing that, the last X-Forwarded-For hop (the one the nearest
    proxy appended — earlier ones are whatever the client claimed), then the socket peer."""
    forwarded = request.headers.get(CLIENT_IP_HEADER, "").strip()
    if forwarded:
        return forwarded
    hops = [h.strip() for value in request.headers.getlist("x-forwarded-for") for h in value.split(",")]
    hops = [h for h in hops if h]
    if hops:
        return hops[-1]
    return request.client.host if request.client else ""


def request_id(request: Request) -> str:
    """The id set by the security middleware for this request (one per request, for the audit)."""
    value = getattr(request.state, "request_id", "")
    if not value:
        value = request.headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
        request.state.request_id = value
    return str(value)
