"""What the pipeline stage tests share: a Call, a `next` that answers with given events (and
notes that it was reached), and events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection, Provider
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.pipeline.call import Call, Events, Next, Stage

KEY = ApiKey(id="k1", name="key", enabled=True, allowed_models=None, limits={}, budget=None, expires_at=None)


def provider(id_: str = "p", type_: str = "openai", family: str = "openai") -> Provider:
    return Provider(id=id_, type=type_, family=family, base_url="http://upstream.test", models=("m",),
                    enabled=True, settings={}, connections=(Connection(
                        id=f"{id_}-c1", provider_id=id_, name="c1", api_key="sk", priority=0, enabled=True,
                        settings={}),))


def make_call(*, snapshot: ConfigSnapshot | None = None, **request: Any) -> Call:
    return Call(request=router_pb2.ChatRequest(**{"request_id": "r1", "model": "p/m", **request}),
                snapshot=snapshot or ConfigSnapshot())


def start(provider: str = "p", connection: str = "c1", model: str = "m", combo: str = "") -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(start=common_pb2.ResponseStart(provider=provider, connection=connection,
                                                                 model=model, combo=combo))


def response(body: bytes = b'{"choices": []}') -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(response=body, format=common_pb2.OPENAI_CHAT)


def usage(input_tokens: int = 3, output_tokens: int = 4) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(usage=common_pb2.Usage(input_tokens=input_tokens, output_tokens=output_tokens))


def error(status: int = 502, code: str = "upstream_error", message: str = "bad") -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=common_pb2.Error(status=status, code=code, message=message))


class Answering:
    """A `next` that yields `events` (and records the calls that reached it)."""

    def __init__(self, events: Iterable[common_pb2.AnswerEvent] = ()) -> None:
        self.events = list(events)
        self.calls: list[Call] = []

    async def __call__(self, call: Call) -> Events:
        self.calls.append(call)
        for event in self.events:
            yield event


async def run(stage: Stage, call: Call, next: Next) -> list[common_pb2.AnswerEvent]:
    return [event async for event in stage(call, next)]


def kinds(events: list[common_pb2.AnswerEvent]) -> list[str | None]:
    return [event.WhichOneof("kind") for event in events]
