"""Admin process: `python -m omniroute_admin` — the management API and dashboard."""

from __future__ import annotations

import os

import uvicorn
from omniroute import runtime, settings

from omniroute_admin.app import create_app


def main() -> None:
    runtime.setup_logging("admin")
    config = settings.load()
    uvicorn.run(create_app(config), host=config.bind_host, port=config.admin_port, loop="uvloop",
                http="httptools", access_log=False, log_level=os.environ.get("LOG_LEVEL", "info").lower())


if __name__ == "__main__":
    main()
