"""POST /api/restart and /api/shutdown: graceful, for the whole stack or named services.

The admin only announces the order (omniroute.control, core NATS `<env>.control.shutdown`);
each process, this one included, drains on its own SIGTERM path and exits — 75 for a restart,
0 for a shutdown. Its supervisor decides what follows: Kubernetes restarts every container
either way; `make run` restarts on 75 and stops the stack otherwise. Executors are not told:
they hold no configuration and have no NATS connection (restart them with their Deployment).

The answer goes out before this process stops: uvicorn's graceful shutdown lets a request that
is already running finish, as it does for every other in-flight request (and the edge's
streams) up to OMNIROUTE_DRAIN_S.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from omniroute import control
from omniroute_admin import audit
from omniroute_admin.deps import Caller, CallerDep, StateDep
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)], tags=["system"])
ORDERABLE = tuple(s for s in control.SERVICES if s != "executor")


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Omitted: every service of the stack. Otherwise a subset of ORDERABLE.
    services: list[str] | None = Field(default=None, max_length=len(ORDERABLE))
    reason: str = Field(default="", max_length=200)


async def _order(state: AdminState, caller: Caller, body: Order | None, *, restart: bool) -> JSONResponse:
    body = body or Order()
    services = body.services if body.services else [control.ALL]
    unknown = sorted(set(services) - {*ORDERABLE, control.ALL})
    if unknown:
        raise HTTPException(400, f"Unknown service(s) {unknown}; choose among {list(ORDERABLE)} "
                                 "or omit `services` for the whole stack (executors hold no state: "
                                 "restart them with their Deployment).")
    action = "restart" if restart else "shutdown"
    # Audited first: once the order is out, this process may be gone.
    await audit.record(state, caller, f"system.{action}", ",".join(services),
                       detail={"services": services, "reason": body.reason})
    await state.nats.publish(control.subject(state.settings),
                             control.order(restart=restart, services=services, reason=body.reason))
    await state.nats.flush()
    return JSONResponse(status_code=202, content={
        "accepted": True, "action": action, "services": services,
        "drainSeconds": state.settings.drain_s,
        "exitCode": control.RESTART_EXIT_CODE if restart else 0,
        "note": ("Each service stops taking new requests, finishes those in flight, then exits; "
                 + ("Kubernetes and `make run` start it again." if restart else
                    "`make run` then stops the whole stack; Kubernetes restarts the pods "
                    "(scale the Deployments to zero to keep them stopped)."))})


@router.post("/api/restart", status_code=202, summary="Drain and restart the stack (or some services)")
async def restart(state: StateDep, caller: CallerDep, body: Order | None = None) -> JSONResponse:
    return await _order(state, caller, body, restart=True)


@router.post("/api/shutdown", status_code=202, summary="Drain and stop the stack (or some services)")
async def shutdown(state: StateDep, caller: CallerDep, body: Order | None = None) -> JSONResponse:
    return await _order(state, caller, body, restart=False)

