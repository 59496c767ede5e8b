"""Stack-wide restart / shutdown, asked for by the admin (`POST /api/restart`, `/api/shutdown`).

The admin announces an order on core NATS, `<env>.control.shutdown`. Every service process that
listens turns it into SIGTERM to itself, so that it drains exactly as it does when Kubernetes or
`make run` stops it: one shutdown path, already exercised by every deploy.

What happens next depends on who supervises the process, and the exit code tells it what was
asked for:
- exit 0 after a shutdown, 75 (EX_TEMPFAIL, "try again") after a restart;
- Kubernetes restarts the container in both cases (restartPolicy Always). A shutdown there is a
  restart too; to really stop a deployment, scale it to zero: the admin has no Kubernetes rights,
  by design;
- `make run` (omniroute.devstack.stack.Supervisor) starts a service that exited with 75 again
  at once, one that crashed (another code, or a signal) again after a crash-loop delay, and
  stops the whole stack when one exits with 0: locally, shutdown stops everything.

Core NATS, not JetStream: an order is only meaningful to the processes running now; one that
starts later must not replay a past shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from omniroute.settings import Settings

log = logging.getLogger("omniroute.control")

RESTART_EXIT_CODE = 75
SERVICES = ("edge", "router", "executor", "accounting", "analytics", "admin")
ALL = "*"

_requested_exit: int | None = None


def subject(settings: Settings) -> str:
    return settings.subject("control.shutdown")


def order(*, restart: bool, services: Iterable[str] = (ALL,), reason: str = "") -> bytes:
    return orjson.dumps({"action": "restart" if restart else "shutdown",
                         "services": list(services), "reason": reason[:200]})


def applies_to(message: dict[str, Any], service: str) -> bool:
    services = message.get("services")
    return isinstance(services, list) and (ALL in services or service in services)


def exit_code() -> int:
    """What the process should exit with once it has drained (0 unless an order came)."""
    return _requested_exit or 0


def exit_after_uvicorn() -> None:
    """For uvicorn processes: install before `uvicorn.run`. Uvicorn drains on SIGTERM, restores
    the handler it found, then raises the signal again; this handler then exits with the order's
    code (75 for a restart). A SIGTERM that no order asked for keeps its default effect."""

    def on_term(signum: int, _frame: object) -> None:
        if _requested_exit is not None:
            raise SystemExit(_requested_exit)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_term)


def signal_self() -> None:
    """The process's own SIGTERM handler does the draining (uvicorn's, or runtime.stop_event)."""
    os.kill(os.getpid(), signal.SIGTERM)


def obey(restart: bool) -> None:
    global _requested_exit
    _requested_exit = RESTART_EXIT_CODE if restart else 0
    signal_self()   # a module global, looked up now: in-process tests replace it


async def listen(client: Client, settings: Settings, service: str) -> None:
    """Subscribe this process to control orders for `service`."""

    async def on_order(msg: Msg) -> None:
        try:
            message = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            log.warning("ignoring an undecodable control order")
            return
        if not isinstance(message, dict) or not applies_to(message, service):
            return
        restart = message.get("action") == "restart"
        log.warning("%s ordered by the admin (%s): draining and exiting",
                    "restart" if restart else "shutdown", message.get("reason") or "no reason given")
        obey(restart)

    await client.subscribe(subject(settings), cb=on_order)
