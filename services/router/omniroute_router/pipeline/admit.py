"""The admit stage: the key (valid, not expired), the policies that apply to it and their model
rewrites, model resolution and access (policy.admit). A refusal answers at once."""

from __future__ import annotations

from omniroute_router.errors import RoutingError
from omniroute_router.pipeline.call import Call, Events, Next, error_event
from omniroute_router.selection import policy


async def admit(call: Call, next: Next) -> Events:
    try:
        call.key, call.policies, call.requested, call.node = policy.admit(
            call.snapshot, call.request.key_id, call.request.model)
    except RoutingError as exc:
        yield error_event(exc.to_proto())
        return
    async for event in next(call):
        yield event
