"""The dispatch stage: the request as it goes upstream (shaped or not), the plan's steps, the
answer's start headers and the call's attempts go to dispatch/dispatch.py; it answers alone."""

from __future__ import annotations

from typing import Any, cast

import pytest

from omniroute.v1 import router_pb2
from omniroute_router.dispatch.dispatch import Attempts, Dispatch
from omniroute_router.pipeline import dispatch as stage_module
from omniroute_router.pipeline.call import Events
from omniroute_router.pipeline.dispatch import DispatchStage
from omniroute_router.selection.plan import Step
from omniroute_router.selection.resolve import Target

from .stages import Answering, kinds, make_call, provider, response, run, start


async def test_the_call_goes_to_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Dispatch, router_pb2.ChatRequest, list[Step], Attempts]] = []

    async def dispatch(ctx: Dispatch, request: router_pb2.ChatRequest, steps: list[Step],
                       attempts: Attempts) -> Events:
        seen.append((ctx, request, steps, attempts))
        yield start()
        yield response()

    monkeypatch.setattr(stage_module, "dispatch", dispatch)
    call = make_call()
    call.shaped = router_pb2.ChatRequest(request_id="r1", body=b"{}")
    call.steps = [Step(Target(provider(), "m"), None)]
    call.headers["x-omniroute-cache"] = "MISS"
    next = Answering([start()])
    events = await run(DispatchStage(cast(Any, None), cast(Any, None), cast(Any, None), 7.0), call, next)
    assert kinds(events) == ["start", "response"] and not next.calls
    [(ctx, request, steps, attempts)] = seen
    assert request is call.shaped and steps == call.steps and attempts is call.attempts
    assert ctx.start_headers is call.headers and ctx.default_timeout_s == 7.0
