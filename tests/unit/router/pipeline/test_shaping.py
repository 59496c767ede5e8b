"""The shaping stage: the canonical body is parsed for the stages after it; a shaped body
replaces the caller's native one (canonical format, no passthrough); unshaped, the caller's
request goes on as it came."""

from __future__ import annotations

import orjson

from omniroute.config.routing_spec import RoutingSettings
from omniroute.config.snapshot import ConfigSnapshot
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.shaping import shape, shaping

from .stages import Answering, make_call, run

BODY = {"model": "p/m", "messages": [{"role": "user", "content": "hi"}]}


async def test_an_unshaped_request_goes_on_as_it_came() -> None:
    call = make_call(body=orjson.dumps(BODY), native_body=b"native", client_format=common_pb2.ANTHROPIC)
    await run(shaping, call, Answering())
    assert call.body == BODY and call.shaped is None and call.upstream is call.request
    assert call.usage_chunk  # a replay in the caller's own format carries its usage


async def test_a_shaped_body_replaces_the_native_one() -> None:
    routing = RoutingSettings.model_validate({"system_prompt": {"enabled": True, "prefix": "Be brief."}})
    call = make_call(snapshot=ConfigSnapshot(routing=routing), body=orjson.dumps(BODY), native_body=b"native",
                     client_format=common_pb2.ANTHROPIC)
    await run(shaping, call, Answering())
    assert call.shaped is not None and call.upstream is call.shaped
    assert call.shaped.client_format == common_pb2.OPENAI_CHAT and call.shaped.native_body == b""
    assert orjson.loads(call.shaped.body)["messages"][0] == {"role": "system", "content": "Be brief."}
    assert call.body["messages"][0]["role"] == "system" and not call.usage_chunk
    assert call.request.native_body == b"native"  # the caller's request itself is left alone


def test_the_system_prompt_goes_around_the_callers_whole_system_prompt() -> None:
    """Prefix first, suffix after the caller's leading system messages, whether their content is
    text or parts (Anthropic's system blocks, a Responses developer item after instructions)."""
    settings = RoutingSettings.model_validate({"system_prompt": {"enabled": True, "prefix": "PRE",
                                                                 "suffix": "SUF"}})
    blocks = [{"type": "text", "text": "OWN", "x_omniroute": {"cache_control": {"type": "ephemeral"}}}]
    body = {"messages": [{"role": "system", "content": "INS"}, {"role": "developer", "content": blocks},
                         {"role": "user", "content": "hi"}]}
    assert shape(body, settings)
    assert body["messages"][:2] == [
        {"role": "system", "content": "PRE\n\nINS"},
        {"role": "developer", "content": [*blocks, {"type": "text", "text": "SUF"}]}]
    alone = {"messages": [{"role": "user", "content": "hi"}]}
    assert shape(alone, settings) and alone["messages"][0] == {"role": "system", "content": "PRE\n\nSUF"}


def test_a_custom_budget_replaces_claudes_own_thinking_mode() -> None:
    settings = RoutingSettings.model_validate({"thinking_budget": {"mode": "custom", "budget_tokens": 5000}})
    body = {"messages": [{"role": "user", "content": "hi"}], "x_omniroute": {"thinking_mode": "adaptive"}}
    assert shape(body, settings)
    assert body["x_omniroute"] == {"thinking_budget": 5000} and body["reasoning_effort"] == "medium"
