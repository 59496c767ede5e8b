"""Connecting to NATS and declaring the event stream."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from omniroute.settings import Settings

log = logging.getLogger("omniroute.bus")


async def connect(url: str, *, name: str, wait_s: float = 30.0) -> Client:
    """Connect, retrying until `wait_s` passes; once connected, reconnect forever."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await nats.connect(url, name=name, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5, connect_timeout=2,
                                      allow_reconnect=True)
        except Exception as exc:  # nats raises several unrelated types on a failed connect
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("NATS at %s not reachable yet (%s); retrying", url, exc)
            await asyncio.sleep(0.5)


def stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=settings.stream_name,
        subjects=[settings.subject("usage.>"), settings.subject("telemetry.>"),
                  settings.subject("audit.>"), settings.subject("mcp.>")],  # mcp.call: McpCallEvent
        storage=StorageType.FILE,
        duplicate_window=120.0,  # seconds: a publish retried within it is stored once
    )


async def ensure_stream(client: Client, settings: Settings) -> None:
    js = client.jetstream()
    config = stream_config(settings)
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)  # exists with an older configuration
