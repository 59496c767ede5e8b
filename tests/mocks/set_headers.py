"""Response headers chosen by the request: ``x-mock-set-<name>: <value>`` makes any route answer
with ``<name>: <value>``. For scripting a provider's rate-limit headers, e.g.
``x-mock-set-x-ratelimit-remaining-requests: 0`` with ``x-mock-set-x-ratelimit-reset-requests: 20s``
(OpenAI) or ``x-mock-set-anthropic-ratelimit-tokens-remaining: 0`` (Anthropic), sent as a
connection's configured headers."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = b"x-mock-set-"


class SetHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = [(name[len(PREFIX):], value) for name, value in scope.get("headers", [])
                 if name.startswith(PREFIX)] if scope["type"] == "http" else []
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
