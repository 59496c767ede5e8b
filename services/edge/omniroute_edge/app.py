"""The edge's ASGI app: client routes, health, and the management proxy (registered last)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from omniroute import control, runtime, telemetry
from omniroute.bus.connection import connect
from omniroute.bus.publisher import EventPublisher
from omniroute.config.watcher import SnapshotHolder
from omniroute.hop_streams.stubs import RouterStreams
from omniroute.settings import Settings
from omniroute.v1 import mcp_pb2_grpc, router_pb2_grpc
from omniroute_edge import (
    admin_proxy,
    anthropic_routes,
    errors,
    gemini_routes,
    ip_filter,
    mcp_endpoint,
    media_routes,
    ollama_routes,
    openai_routes,
    responses_routes,
)
from omniroute_edge.client_formats import OPENAI_CHAT
from omniroute_edge.state import EdgeState


def create_app(settings: Settings) -> FastAPI:
    mcp_sessions = mcp_endpoint.session_manager()  # /mcp (one per app: its run() is the lifespan's)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry.setup("omniroute-edge")
        nats_client = await connect(settings.nats_url, name="omniroute-edge")
        holder = SnapshotHolder(settings, decrypt=False)
        await holder.start(nats_client)
        await control.listen(nats_client, settings, "edge")  # admin's restart / shutdown orders
        channel = runtime.channel(settings.router_addr)
        # A jar that accepts nothing: this client is shared by every caller, so a Set-Cookie from
        # the admin (a login) must go to that caller's browser only, never be replayed for others.
        admin = httpx.AsyncClient(base_url=settings.admin_url, timeout=httpx.Timeout(300, connect=5),
                                  cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
        publisher = EventPublisher(nats_client)  # refusals' usage events (refusals.py)
        publisher.start()
        unary = router_pb2_grpc.RouterStub(channel)
        # OMNIROUTE_HOP_TRANSPORT=stream: requests as messages on long-lived streams (ListModels unary)
        router: router_pb2_grpc.RouterStub | RouterStreams = \
            RouterStreams(settings, unary) if settings.hop_transport in ("stream", "tcp") else unary
        app.state.edge = EdgeState(settings=settings, config=holder, router=router, admin=admin,
                                   nats=nats_client, publisher=publisher,
                                   mcp=mcp_pb2_grpc.McpGatewayStub(channel))
        try:
            async with mcp_sessions.run():
                yield
        finally:
            if isinstance(router, RouterStreams):
                await router.close()
            await publisher.close()
            await holder.stop()
            await admin.aclose()
            await channel.close()
            await nats_client.drain()
            telemetry.shutdown()

    app = FastAPI(title="OmniRoute gateway", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.add_middleware(ip_filter.IpFilterMiddleware)  # admin's IP allow/blocklist (settings)

    # FastAPI itself opens the server span of each request under the global tracer provider.

    # A route that raised: 500 internal_error in the caller's format (never a bare text 500).
    app.add_exception_handler(Exception, errors.internal_error_response)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return errors.error_response(OPENAI_CHAT, 400, f"Invalid request: {exc.errors()[:3]}")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        ready = request.app.state.edge.config.current.loaded_at > 0
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    # An ASGI endpoint (the SDK's transport answers, streams included), not a FastAPI route.
    app.router.routes.append(Route(mcp_endpoint.PATH, mcp_endpoint.McpEndpoint(mcp_sessions),
                                   methods=["GET", "POST", "DELETE"]))
    for routes in (openai_routes, responses_routes, anthropic_routes, gemini_routes, ollama_routes,
                   media_routes):
        app.include_router(routes.router)
    # Last: the Ollama routes above share /api/* with the management API.
    app.include_router(admin_proxy.router)
    return app
