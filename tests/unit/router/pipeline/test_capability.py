"""The capability stage: an operation the router does not serve, or a provider that cannot do
it, is a 400 alone; a capable one goes on."""

from __future__ import annotations

from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call
from omniroute_router.pipeline.capability import capable
from omniroute_router.selection.resolve import Target

from .stages import Answering, make_call, provider, response, run, start


def call_for(operation: common_pb2.Operation, family: str = "openai",
             client_format: common_pb2.ApiFormat = common_pb2.OPENAI_CHAT) -> Call:
    call = make_call(operation=operation, client_format=client_format)
    call.node = Target(provider(type_=family, family=family), "m")
    return call


async def test_an_unserved_operation_is_refused() -> None:
    next = Answering([start()])
    [event] = await run(capable, call_for(common_pb2.OPERATION_TEST), next)
    assert (event.error.status, event.error.code) == (400, "unsupported_operation") and not next.calls


async def test_token_counts_need_a_provider_that_counts_the_callers_format() -> None:
    next = Answering([start(), response()])
    [event] = await run(capable, call_for(common_pb2.OPERATION_COUNT_TOKENS), next)
    assert event.error.code == "count_locally"
    events = await run(capable, call_for(common_pb2.OPERATION_COUNT_TOKENS, "anthropic",
                                         common_pb2.ANTHROPIC), next)
    assert len(events) == 2 and len(next.calls) == 1
