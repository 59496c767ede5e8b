"""Admin process: `python -m omniroute_admin` — the management API and dashboard."""

from __future__ import annotations

import uvicorn

from omniroute import control, runtime, settings
from omniroute_admin.app import create_app


def main() -> None:
    runtime.setup_logging("admin")
    config = settings.load()
    control.exit_after_uvicorn()   # 75 after a restart order: start me again
    uvicorn.run(create_app(config), host=config.bind_host, port=config.admin_port, loop="uvloop",
                http="httptools", access_log=False, log_level=config.log_level.lower(),
                proxy_headers=False,  # the caller's address comes from the edge (requestctx)
                timeout_graceful_shutdown=int(config.drain_s))


if __name__ == "__main__":
    main()
