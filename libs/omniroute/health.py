"""A small HTTP health endpoint for services that have no HTTP API of their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def health_server(host: str, port: int, ready: Callable[[], bool]) -> uvicorn.Server:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        ok = ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    app = Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    # The service owns SIGTERM (runtime.stop_event); uvicorn must not take it over.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


async def run_until(server: uvicorn.Server, stop: asyncio.Event) -> None:
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
