"""The plan stage: the resolved model's steps for the next stages; an operation keeps only the
steps whose provider can do it."""

from __future__ import annotations

from typing import Any, cast

from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call
from omniroute_router.pipeline.plan import Plan
from omniroute_router.selection.resolve import Target

from .stages import Answering, make_call, provider, run

# A direct provider/model needs no combo state nor account health to be planned.
PLAN = Plan(cast(Any, None), cast(Any, None))


def call_for(operation: common_pb2.Operation, family: str) -> Call:
    call = make_call(operation=operation, client_format=common_pb2.ANTHROPIC)
    call.node, call.requested = Target(provider(type_=family, family=family), "m"), "p/m"
    return call


async def test_a_chat_call_gets_its_steps() -> None:
    next = Answering()
    await run(PLAN, call_for(common_pb2.OPERATION_CHAT, "openai"), next)
    [call] = next.calls
    assert [step.target.name for step in call.steps] == ["p/m"]


async def test_an_operation_keeps_only_capable_steps() -> None:
    counted, not_counted = call_for(common_pb2.OPERATION_COUNT_TOKENS, "anthropic"), \
        call_for(common_pb2.OPERATION_COUNT_TOKENS, "openai")
    await run(PLAN, counted, Answering())
    await run(PLAN, not_counted, Answering())
    assert len(counted.steps) == 1 and not_counted.steps == []
