"""What every service process does the same way: logging, the event loop, signals, gRPC serving."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from omniroute import control, settings

if TYPE_CHECKING:
    from omniroute.hop_streams.tcp import TcpSessionServer


def setup_logging(service: str) -> None:
    level = settings.load().log_level
    logging.basicConfig(level=level, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `main` on uvloop when available (it is in production images). With OMNIROUTE_CPROFILE
    set to a folder, the process writes a cProfile of its whole run there (bench/profile.py)."""
    profile_dir = settings.load().cprofile_dir
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    finally:
        if profiler is not None and profile_dir:
            profiler.disable()
            profiler.dump_stats(os.path.join(profile_dir, f"{os.getpid()}.prof"))
    # After a restart order (omniroute.control) exit with 75 so that the supervisor starts it again.
    if control.exit_code():
        raise SystemExit(control.exit_code())


def stop_event() -> asyncio.Event:
    """An event set on SIGTERM / SIGINT, for graceful shutdown.

    Draining may take up to OMNIROUTE_DRAIN_S; past that (plus a margin), or on a second
    signal, the process exits at once, so that a stuck dependency can never keep it alive."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline_s = settings.load().drain_s + 10

    def on_signal() -> None:
        if event.is_set():
            os._exit(1)
        event.set()
        loop.call_later(deadline_s, os._exit, 1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return event


GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

#: A gRPC server's own: no SO_REUSEPORT (gRPC sets it by default), so that a second server on a
#: port already served fails to start instead of silently taking half of its connections — a
#: stack whose edge reached another process's server on its router's port answered nothing.
SERVER_OPTIONS = [*GRPC_OPTIONS, ("grpc.so_reuseport", 0)]


async def serve_grpc(register: Callable[[grpc.aio.Server], None], *, host: str, port: int,
                     service_names: list[str], grace_s: float | None = None,
                     tcp_sessions: TcpSessionServer | None = None) -> None:
    """Serve until SIGTERM, then stop taking calls and let running streams finish (`grace_s`,
    by default OMNIROUTE_DRAIN_S: the chart sets it from the pod's termination grace period).
    `tcp_sessions`: the session streams on plain TCP too (OMNIROUTE_HOP_TCP_PORT; before the
    gRPC port opens, so that its `Session` headers can name that port)."""
    config = settings.load()
    if grace_s is None:
        grace_s = config.drain_s
    if tcp_sessions is not None and config.hop_tcp_port >= 0:
        await tcp_sessions.start(host, config.hop_tcp_port)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in [*service_names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logging.getLogger("omniroute").info("gRPC listening on %s:%d", host, port)
    await stop_event().wait()
    for name in [*service_names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    # Session streams (omniroute.hop_streams) never end by themselves: their clients are asked to
    # close them once their requests are done, so that stop() waits for those requests only.
    from omniroute.hop_streams import server as hop_streams_server

    await hop_streams_server.drain_all()
    await asyncio.gather(server.stop(grace_s), *([tcp_sessions.close(grace_s)] if tcp_sessions else []))


def channel(address: str, options: list[tuple[str, int]] | None = None) -> grpc.aio.Channel:
    """One long-lived channel per peer service, reused by every request. Round robin spreads
    calls over every address the target resolves to (a headless Service's pods, or an
    explicit list such as `ipv4:127.0.0.1:5001,127.0.0.1:5002`). `options` add to (or
    override) the shared ones."""
    return grpc.aio.insecure_channel(address, options=[*GRPC_OPTIONS, ("grpc.lb_policy_name", "round_robin"),
                                                       *(options or [])])
