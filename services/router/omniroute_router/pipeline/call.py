"""What the stages of the pipeline pass along, and how they are put together.

A stage is `async (call, next) -> events`, like a gRPC interceptor: it may act before calling
`next`, watch or change the events `next` yields, answer without calling it (a cache hit, a
refusal), and act after the answer (in `finally`). `compose` puts a list of stages in order; the
last one answers without `next`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from omniroute.config.routing_spec import PolicySpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.dispatch.dispatch import Attempts
from omniroute_router.selection.plan import Step
from omniroute_router.selection.resolve import Node

Events = AsyncIterator[common_pb2.AnswerEvent]
Next = Callable[["Call"], Events]
Stage = Callable[["Call", Next], Events]


@dataclass
class Call:
    """One request on its way: what the caller sent, and what a stage learned for those after it."""

    request: router_pb2.ChatRequest
    snapshot: ConfigSnapshot
    headers: dict[str, str] = field(default_factory=dict)  # added to the answer's ResponseStart
    # admit
    key: ApiKey | None = None
    policies: list[PolicySpec] = field(default_factory=list)
    requested: str = ""         # the model after policy rewrites
    node: Node | None = None    # what it resolved to
    # shaping (chat only): the canonical body, parsed and shaped; the request with it when shaping
    # changed it (it then replaces the caller's native body: no passthrough)
    body: dict[str, Any] = field(default_factory=dict)
    shaped: router_pb2.ChatRequest | None = None
    usage_chunk: bool = False   # a replayed stream carries the usage chunk (caller's format, or asked)
    # plan
    steps: list[Step] = field(default_factory=list)
    # For the request's record, what the answer's events do not say:
    cache_kind: str = ""        # which cache answered: exact, semantic, idempotent
    attempts: Attempts = field(default_factory=Attempts)  # failed attempts (dispatch)
    _parsed: dict[str, Any] | None = field(default=None, repr=False)

    def parsed_body(self) -> dict[str, Any]:
        """The request's canonical body, parsed once for every stage that reads it (budget,
        shaping); {} when it is not a JSON object (an operation's body may be something else)."""
        if self._parsed is None:
            try:
                parsed: Any = orjson.loads(self.request.body) if self.request.body else {}
            except orjson.JSONDecodeError:
                parsed = {}
            self._parsed = parsed if isinstance(parsed, dict) else {}
        return self._parsed

    @property
    def resolved(self) -> Node:
        assert self.node is not None, "the admit stage runs first"
        return self.node

    @property
    def upstream(self) -> router_pb2.ChatRequest:
        """The request as it goes on to the executor."""
        return self.shaped if self.shaped is not None else self.request


def compose(stages: Sequence[Stage]) -> Pipeline:
    return Pipeline(stages)


class Pipeline:
    """The stages, run in order for each call (`stages` is read per call: tests swap one)."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def __call__(self, call: Call) -> Events:
        return self._from(0, call)

    def _from(self, index: int, call: Call) -> Events:
        if index == len(self.stages):
            return _nothing()
        return self.stages[index](call, lambda next_call: self._from(index + 1, next_call))


async def _nothing() -> Events:
    return
    yield  # an async generator that yields nothing


def error_event(error: common_pb2.Error) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=error)
