"""What a request may cost at most (reserved before dispatch) and what it did cost (settled when
the answer ends), in nano-dollars at the config snapshot's price book: the pricing table that
accounting prices the usage rows with, reloaded on config.changed (no Postgres per request)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.store.pricing import to_nanos
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call
from omniroute_router.selection.resolve import ComboNode, Node, Target

# A token is at least one byte of UTF-8 text and usually about four: a third of the body's bytes
# (JSON syntax included) is more tokens than the prompt has.
_BYTES_PER_TOKEN = 3
_MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def worst_case_nanos(call: Call, default_max_tokens: int) -> int:
    """The most this request can cost: its prompt (estimated) plus its largest answer, at the
    dearest price among the targets it may go to (a combo may fall back to any of them)."""
    request = call.request
    prompt_tokens = -(-max(len(request.body), len(request.native_body)) // _BYTES_PER_TOKEN)
    output_tokens = 0
    if request.operation == common_pb2.OPERATION_CHAT:
        output_tokens = _max_output_tokens(request.body, default_max_tokens)
    nanos = 0
    for target in _targets(call.resolved):
        price = call.snapshot.prices.find(target.provider.type, target.model)
        if price is not None:
            nanos = max(nanos, to_nanos(price.cost(prompt_tokens, output_tokens)))
    return nanos


def answer_nanos(snapshot: ConfigSnapshot, start: common_pb2.ResponseStart | None,
                 usage: common_pb2.Usage | None) -> int:
    """The cost accounting will record for this answer (same book, provider type and counts)."""
    if start is None or usage is None:
        return 0
    provider = snapshot.providers.get(start.provider)
    cost = snapshot.prices.cost(provider.type if provider else start.provider, start.model,
                                usage.input_tokens, usage.output_tokens, usage.cached_tokens)
    return 0 if cost is None else to_nanos(cost)


def _max_output_tokens(body: bytes, default: int) -> int:
    try:
        parsed: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    limit = next((parsed[name] for name in _MAX_TOKENS_FIELDS if isinstance(parsed.get(name), int)), default)
    choices = parsed.get("n") if isinstance(parsed.get("n"), int) else 1
    return max(limit, 0) * max(choices, 1)


def _targets(node: Node) -> Iterator[Target]:
    if isinstance(node, ComboNode):
        for step in node.steps:
            yield from _targets(step)
    else:
        yield node
