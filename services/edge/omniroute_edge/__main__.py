"""Edge process: `python -m omniroute_edge` — the public HTTP port."""

from __future__ import annotations

import uvicorn

from omniroute import control, runtime, settings
from omniroute_edge.app import create_app


def app_factory() -> object:
    """For uvicorn's worker processes (OMNIROUTE_EDGE_WORKERS > 1): each builds its own app."""
    return create_app(settings.load())


def main() -> None:
    runtime.setup_logging("edge")
    config = settings.load()
    workers = config.edge_workers
    app: object = "omniroute_edge.__main__:app_factory" if workers > 1 else create_app(config)
    control.exit_after_uvicorn()   # 75 after a restart order: start me again
    uvicorn.run(app, factory=workers > 1, workers=workers,  # type: ignore[arg-type]
                host=config.bind_host, port=config.edge_port,
                loop="uvloop", http="httptools", access_log=False,
                # uvicorn would otherwise believe X-Forwarded-For from any 127.0.0.1 peer and
                # hand the spoofed address on as the socket peer; the edge's ip_filter decides
                # which proxies to believe (trusted_proxies), so the peer must stay the peer.
                proxy_headers=False,
                log_level=config.log_level.lower(), timeout_graceful_shutdown=int(config.drain_s))


if __name__ == "__main__":
    main()
