"""Edge process: `python -m omniroute_edge` — the public HTTP port."""

from __future__ import annotations

import os

import uvicorn
from omniroute import runtime, settings

from omniroute_edge.app import create_app


def main() -> None:
    runtime.setup_logging("edge")
    config = settings.load()
    uvicorn.run(create_app(config), host=config.bind_host, port=config.edge_port,
                loop="uvloop", http="httptools", access_log=False,
                log_level=os.environ.get("LOG_LEVEL", "info").lower(),
                timeout_graceful_shutdown=int(os.environ.get("OMNIROUTE_DRAIN_S", "30")))


if __name__ == "__main__":
    main()
