"""What a request may cost at most (reserved before dispatch) and what it did cost (settled when
the answer ends), in nano-dollars at the config snapshot's price book: the pricing table that
accounting prices the usage rows with, through the same price function (Price.charge, the
configured default price for a model without one), reloaded on config.changed (no Postgres per
request)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import orjson

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.store.pricing import DefaultPrice, Units, to_nanos
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call
from omniroute_router.selection.resolve import ComboNode, Node, Target

# Every text token is at least one byte of UTF-8 (byte-level BPE, SentencePiece pieces), so the
# body's length in bytes (JSON syntax included) bounds the prompt's text tokens from above: a hard
# bound, not an average, because the hold must never be smaller than the real cost.
_BYTES_PER_TOKEN = 1
# An image given by URL costs tokens its bytes in the body do not show; no provider bills one
# image above this many input tokens (the dearest: OpenAI's patch-billed small models, at most
# 1 536 patches x 2.46; Anthropic ~1 600 after resizing; Gemini 258 per tile). Every mention of
# "image_url" counts (a part names it twice, as its type and its key: over-, never under-counted).
_TOKENS_PER_LINKED_IMAGE = 4_000
_MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
# Audio whose length a header does not say: its bytes at 16 kbit/s, below any speech codec's
# usual rate (MP3 and AAC >= 32, Opus voice ~24), so the seconds are over-, never underestimated.
_CONSERVATIVE_AUDIO_BYTES_PER_S = 2_000


def worst_case_nanos(call: Call, default_max_tokens: int, default: DefaultPrice) -> int:
    """The most this request can cost: its prompt (estimated) plus its largest answer, n images
    at their size and quality, or the upload's audio seconds, at the dearest price among the
    targets it may go to (a combo may fall back to any of them)."""
    units = worst_case_units(call.request, default_max_tokens, call.parsed_body())
    nanos = 0
    for target in _targets(call.resolved):
        price, _ = call.snapshot.prices.price_or_default(target.provider.type, target.model, default)
        nanos = max(nanos, to_nanos(price.charge(units)))
    return nanos


def worst_case_units(request: Any, default_max_tokens: int, body: dict[str, Any] | None = None) -> Units:
    """The largest usage a request (omniroute.v1 ChatRequest) can report; `body` is its body
    already parsed, when the caller has it."""
    body = _json(request.body) if body is None else body
    prompt_tokens = -(-max(len(request.body), len(request.native_body)) // _BYTES_PER_TOKEN)
    prompt_tokens += request.body.count(b'"image_url"') * _TOKENS_PER_LINKED_IMAGE
    operation = request.operation
    if operation == common_pb2.OPERATION_IMAGES:
        return Units(input_tokens=prompt_tokens, images=_int(body.get("n"), 1),
                     image_size=str(body.get("size") or ""), image_quality=str(body.get("quality") or ""))
    if operation == common_pb2.OPERATION_TRANSCRIPTION:
        return Units(audio_seconds=audio_seconds(request.attachment.data))
    if operation == common_pb2.OPERATION_CHAT:
        limit = next((body[name] for name in _MAX_TOKENS_FIELDS if isinstance(body.get(name), int)),
                     default_max_tokens)
        return Units(input_tokens=prompt_tokens, output_tokens=max(limit, 0) * _int(body.get("n"), 1))
    return Units(input_tokens=prompt_tokens)  # embeddings: input only


def audio_seconds(data: bytes) -> float:
    """A WAV upload's exact duration from its header; anything else from its size at a bitrate
    lower than real speech audio has."""
    if len(data) >= 44 and data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data[12:16] == b"fmt ":
        byte_rate = struct.unpack_from("<I", data, 28)[0]
        if byte_rate > 0:
            return max(len(data) - 44, 0) / byte_rate
    return len(data) / _CONSERVATIVE_AUDIO_BYTES_PER_S


def answer_nanos(snapshot: ConfigSnapshot, start: common_pb2.ResponseStart | None,
                 usage: common_pb2.Usage | None, default: DefaultPrice) -> int:
    """The cost accounting will record for this answer (same book, provider type and counts)."""
    if start is None or usage is None:
        return 0
    provider = snapshot.providers.get(start.provider)
    cost, _ = snapshot.prices.charge(provider.type if provider else start.provider, start.model,
                                     Units.of(usage), default)
    return to_nanos(cost)


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed: Any = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int(value: Any, default: int) -> int:
    return max(value, 1) if isinstance(value, int) and not isinstance(value, bool) else default


def _targets(node: Node) -> Iterator[Target]:
    if isinstance(node, ComboNode):
        for step in node.steps:
            yield from _targets(step)
    else:
        yield node
