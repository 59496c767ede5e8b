"""The admin service's ASGI app: the control plane (/api/*), its OpenAPI document and docs page,
and the dashboard (/dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import AsyncConnectionPool
from starlette.responses import JSONResponse, Response

from omniroute import control, shared_state, telemetry
from omniroute.bus.connection import connect
from omniroute.secrets import Crypto
from omniroute.settings import Settings
from omniroute_admin import access, api, dashboard, passwords, sessions
from omniroute_admin.deps import StateDep
from omniroute_admin.features import config_file, maintenance, model_discovery, oidc
from omniroute_admin.security import SecurityHeaders
from omniroute_admin.state import AdminState


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry.setup("omniroute-admin")
        file_config = config_file.parse(settings.config_file) if settings.config_file else None
        oidc.OidcConfig.from_settings(settings)   # a malformed SSO role or team map stops the start
        pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=8, open=False)
        await pool.open()
        nats_client = await connect(settings.nats_url, name="omniroute-admin")
        await control.listen(nats_client, settings, "admin")  # restart / shutdown orders
        state = AdminState(settings=settings, pool=pool, nats=nats_client,
                           redis=shared_state.connect(settings), crypto=Crypto(settings.master_key))
        app.state.admin = state
        await passwords.ensure_initial(pool, settings.initial_password)
        if file_config is not None:
            await config_file.apply(state, file_config)
        upkeep = asyncio.create_task(maintenance.loop(state))
        stop_discovery = asyncio.Event()
        discovery = asyncio.create_task(model_discovery.loop(state, stop_discovery))
        try:
            yield
        finally:
            stop_discovery.set()
            for task in (upkeep, discovery):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await nats_client.drain()
            await pool.close()
            await state.redis.aclose()
            telemetry.shutdown()

    # Swagger UI would load from a CDN: /docs is our own offline page instead (api/docs.py).
    app = FastAPI(title="OmniRoute management API", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/dashboard"):
            return dashboard.error_page(request, exc)
        return JSONResponse({"error": {"message": exc.detail, "status": exc.status_code}},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        said = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:3])
        return JSONResponse({"error": {"message": f"Invalid request: {said}", "status": 400,
                                       "details": details}}, status_code=400)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(state: StateDep) -> Response:
        ready = not state.pool.closed
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    app.include_router(api.router)
    app.include_router(dashboard.router)
    access.document_roles(app, gate=sessions.require_session)   # x-required-role on every operation
    return app
