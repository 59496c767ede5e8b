"""Request headers the router acts on, passed as ChatRequest.options (one place for their names)."""

from __future__ import annotations

from starlette.requests import Request

# option name → request header
_HEADERS = {
    "no_cache": "x-omniroute-no-cache",
    "progress": "x-omniroute-progress",
    "idempotency_key": "idempotency-key",
    "client_request_id": "x-request-id",
    "cache_control": "cache-control",
    "semantic_cache": "x-omniroute-semantic-cache",
}


def request_options(request: Request) -> dict[str, str]:
    headers = request.headers
    options = {name: headers[header] for name, header in _HEADERS.items() if header in headers}
    if "idempotency_key" not in options and "client_request_id" in options:
        options["idempotency_key"] = options["client_request_id"]  # the seed's alternative dedup key
    return options
