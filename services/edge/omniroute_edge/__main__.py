"""Edge process: `python -m omniroute_edge` — the public HTTP port.

OMNIROUTE_EDGE_SERVER picks the HTTP server: uvicorn (httptools, the default) or granian, which
`python -m bench.edge_server` compares on the same app (bench/README.md, issue 20)."""

from __future__ import annotations

import uvicorn

from omniroute import control, runtime, settings
from omniroute.settings import Settings
from omniroute_edge.app import create_app

APP_FACTORY = "omniroute_edge.__main__:app_factory"


def app_factory() -> object:
    """For worker processes (uvicorn's when OMNIROUTE_EDGE_WORKERS > 1, granian's always):
    each builds its own app."""
    return create_app(settings.load())


def run_uvicorn(config: Settings) -> None:
    workers = config.edge_workers
    app: object = APP_FACTORY if workers > 1 else create_app(config)
    control.exit_after_uvicorn()   # 75 after a restart order: start me again
    uvicorn.run(app, factory=workers > 1, workers=workers,  # type: ignore[arg-type]
                host=config.bind_host, port=config.edge_port,
                loop="uvloop", http="httptools", access_log=False,
                # uvicorn would otherwise believe X-Forwarded-For from any 127.0.0.1 peer and
                # hand the spoofed address on as the socket peer; the edge's ip_filter decides
                # which proxies to believe (trusted_proxies), so the peer must stay the peer.
                proxy_headers=False,
                log_level=config.log_level.lower(), timeout_graceful_shutdown=int(config.drain_s))


def run_granian(config: Settings) -> None:
    """For the measurement only (uvicorn stayed the default, bench/README.md): no restart exit
    code (control.exit_after_uvicorn) and workers are stopped after drain_s rather than drained
    request by request. Granian is a benchmark dependency (bench/requirements-bench.txt)."""
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    # Granian takes X-Forwarded-For into the ASGI client address only through an app wrapper
    # (granian.utils.proxies), not used here: the peer stays the peer, as with uvicorn above.
    Server(APP_FACTORY, factory=True, interface=Interfaces.ASGI, address=config.bind_host,
           port=config.edge_port, workers=config.edge_workers, runtime_threads=1, loop=Loops.uvloop,
           log_access=False, log_level=config.log_level.lower(),  # type: ignore[arg-type]
           workers_kill_timeout=int(config.drain_s) or None).serve()


def main() -> None:
    runtime.setup_logging("edge")
    config = settings.load()
    if config.edge_server == "granian":
        run_granian(config)
    else:
        run_uvicorn(config)


if __name__ == "__main__":
    main()
