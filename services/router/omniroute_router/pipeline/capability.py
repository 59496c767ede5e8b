"""The capability stage (operations only, after admit): the operation is one the router serves
and the resolved model's provider can do it (selection/capability.py)."""

from __future__ import annotations

from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.call import Call, Events, Next, error_event
from omniroute_router.selection.capability import check_capability


async def capable(call: Call, next: Next) -> Events:
    try:
        check_capability(call.resolved, call.request.operation, call.request.client_format)
    except RoutingError as exc:
        yield error_event(exc.to_proto())
        return
    async for event in next(call):
        yield event
