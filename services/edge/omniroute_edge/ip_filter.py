"""IP allowlist / blocklist at the edge, from the admin's `ip_filter` settings in the snapshot.

A pure ASGI middleware (no body buffering, streaming untouched). It also works out the client's
address once — honouring the configured trusted-proxy header — and hands it to the admin service
in `x-omniroute-client-ip` (audit rows, login lockout), replacing any value the client sent.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from omniroute.bus import audit_events
from omniroute.ipfilter import IpFilter
from omniroute.secrets import hash_api_key
from omniroute_edge.auth import presented_key

log = logging.getLogger("omniroute.edge.ip_filter")
CLIENT_IP_HEADER = b"x-omniroute-client-ip"
_ALWAYS_OPEN = ("/healthz", "/readyz", "/metrics")
# Ollama's native client routes live under /api next to the management API.
_OLLAMA = ("/api/tags", "/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show",
           "/api/version", "/api/ps")


def _is_client_traffic(path: str) -> bool:
    return path.startswith(("/v1/", "/v1beta/")) or path in ("/v1", "/v1beta") or path in _OLLAMA


class IpFilterMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._source: Any = None            # the settings document the cached rules came from
        self._rules: IpFilter | None = None
        self._options: dict[str, Any] = {}

    def _compiled(self, document: Any) -> tuple[IpFilter | None, dict[str, Any]]:
        if document is not self._source:
            self._source = document
            try:
                options = dict(document or {})
                self._rules = IpFilter.build(options.get("allowlist") or (), options.get("blocklist") or (),
                                             options.get("trusted_proxies") or (),
                                             options.get("trusted_proxy_header") or "")
                self._options = options
            except (ValueError, TypeError):
                # The admin validates before storing; a bad document here means no filtering
                # rather than refusing everyone.
                log.error("ip_filter settings cannot be read; filtering is off until they are fixed")
                self._rules, self._options = None, {}
        return self._rules, self._options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _ALWAYS_OPEN:
            await self.app(scope, receive, send)
            return
        edge = getattr(scope["app"].state, "edge", None)
        document = edge.config.current.settings.get("ip_filter") if edge is not None else None
        rules, options = self._compiled(document)
        peer = scope["client"][0] if scope.get("client") else ""
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != CLIENT_IP_HEADER]
        client = peer
        if rules is not None:
            header_value = None
            if rules.header:
                found = [v.decode("latin-1") for k, v in headers if k.decode("latin-1") == rules.header]
                header_value = ", ".join(found) if found else None
            client = rules.client_address(peer, header_value)
        scope = {**scope, "headers": [*headers, (CLIENT_IP_HEADER, client.encode("latin-1"))]}
        if rules is not None and options.get("enabled"):
            client_traffic = _is_client_traffic(scope["path"])
            applies = options.get("apply_to_api", True) if client_traffic else \
                options.get("apply_to_dashboard", True)
            if applies and not rules.allows(client):
                _audit(edge, scope, client)
                await _forbidden(send, client)
                return
        await self.app(scope, receive, send)


def _audit(edge: Any, scope: Scope, client: str) -> None:
    """The refusal as an audit event: under the key the request presented when it is one of
    ours (and its team), else under the address. Nothing without a publisher (an edge state
    built without NATS)."""
    publisher = getattr(edge, "publisher", None)
    if publisher is None:
        return
    presented = presented_key(Request(scope))
    key = edge.config.current.keys_by_hash.get(hash_api_key(presented)) if presented else None
    audit_events.publish_refusal(
        publisher, edge.settings, request_id=uuid.uuid4().hex,
        actor=audit_events.key_actor(key.id) if key else f"ip:{client}", team_id=key.team_id if key else "",
        reason="ip_blocked", status=403, message=f"Requests from {client} are not allowed.",
        route=scope["path"], model="", ip=client, service="edge")


async def _forbidden(send: Send, client: str) -> None:
    body = orjson.dumps({"error": {"message": f"Requests from {client} are not allowed.",
                                   "type": "permission_error", "code": "ip_not_allowed"}})
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
