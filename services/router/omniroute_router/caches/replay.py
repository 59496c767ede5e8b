"""Answers kept in Redis and played back: idempotency keeps the events themselves; the exact
and semantic caches keep a canonical answer as the `chat.completion`, played back as JSON or as a
stream, and a passed-through answer (chunks in the caller's own format, `AnswerEvent.format`) as
its chunks or its whole body, played back as they came. Such an entry only fits requests of the
same client format and stream flag: `variant` says which, and the caches key entries by it."""

from __future__ import annotations

from typing import Any

import orjson

from omniroute.answers import CHUNK_KINDS, chunks_of
from omniroute.formats.canonical import StreamAccumulator, response_to_chunks
from omniroute.v1 import common_pb2, router_pb2

_CANONICAL = (common_pb2.OPENAI_CHAT, common_pb2.API_FORMAT_UNSPECIFIED)


def encode_events(events: list[common_pb2.AnswerEvent]) -> bytes:
    out = bytearray()
    for event in events:
        data = event.SerializeToString()
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def decode_events(data: bytes) -> list[common_pb2.AnswerEvent]:
    events, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        events.append(common_pb2.AnswerEvent.FromString(data[offset + 4:offset + 4 + size]))
        offset += 4 + size
    return events


def variant(request: router_pb2.ChatRequest) -> str:
    """Which requests one cache entry may answer besides the prompt: "" for an OpenAI chat
    client (its answers are canonical, JSON and stream alike); for any other client format, that
    format and the stream flag, since its answer may be one passed through in its own format."""
    if request.client_format in _CANONICAL:
        return ""
    return f"{common_pb2.ApiFormat.Name(request.client_format)}:{'stream' if request.stream else 'whole'}"


class Collector:
    """Assembles a cache entry from the events as they pass: the canonical answer, or the
    passed-through one as it came (None when it cannot be kept: an error, or no answer)."""

    def __init__(self) -> None:
        self.start: common_pb2.ResponseStart | None = None
        self.response: bytes | None = None
        self.accumulator: StreamAccumulator | None = None
        self.usage: common_pb2.Usage | None = None
        self.native_format = 0  # the caller's format when the answer passed through
        self.native_chunks: list[list[str]] = []  # [SSE event name, data] in order
        self.valid = True

    def add(self, event: common_pb2.AnswerEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "start":
            self.start = event.start
        elif kind == "usage":
            self.usage = event.usage
        elif kind == "error":
            self.valid = False
        elif kind in (*CHUNK_KINDS, "response") and event.format not in _CANONICAL:
            self.native_format = event.format
            if kind == "response":
                self.response = event.response
            self.native_chunks += [[chunk.event, chunk.data.decode()] for chunk in chunks_of(event)]
        elif kind == "response":
            self.response = event.response
        elif kind in CHUNK_KINDS:
            self.accumulator = self.accumulator or StreamAccumulator()
            for chunk in chunks_of(event):
                self.accumulator.add(orjson.loads(chunk.data))

    def entry(self) -> bytes | None:
        if not self.valid or self.start is None:
            return None
        answered_by = {"provider": self.start.provider, "connection": self.start.connection,
                       "model": self.start.model, "combo": self.start.combo}
        if self.native_format:
            if self.response is not None:
                return orjson.dumps({**answered_by, "format": self.native_format,
                                     "response": self.response.decode()})
            return orjson.dumps({**answered_by, "format": self.native_format, "chunks": self.native_chunks})
        if self.response is not None:
            body: dict[str, Any] = orjson.loads(self.response)
        elif self.accumulator is not None:
            body = self.accumulator.result()
        else:
            return None
        if self.usage is not None and not body.get("usage"):
            body["usage"] = {"prompt_tokens": self.usage.input_tokens,
                             "completion_tokens": self.usage.output_tokens,
                             "total_tokens": self.usage.input_tokens + self.usage.output_tokens}
        return orjson.dumps({**answered_by, "body": body})


def cached_events(entry: bytes, *, stream: bool, usage_chunk: bool,
                  headers: dict[str, str]) -> list[common_pb2.AnswerEvent]:
    """A cache entry as the events of a fresh answer (no usage event: a hit costs nothing)."""
    value = orjson.loads(entry)
    start = common_pb2.ResponseStart(provider=value["provider"], connection=value["connection"],
                                     model=value["model"], combo=value.get("combo", ""), headers=headers)
    events = [common_pb2.AnswerEvent(start=start)]
    if "format" in value:  # passed through: played back as it came (the key matched its variant)
        if "response" in value:
            events.append(common_pb2.AnswerEvent(response=value["response"].encode(), format=value["format"]))
        else:
            items = [common_pb2.Chunk(event=name, data=data.encode()) for name, data in value["chunks"]]
            events.append(common_pb2.AnswerEvent(chunks=common_pb2.ChunkBatch(items=items),
                                                 format=value["format"]))
        return events
    body = value["body"]
    if not stream:
        events.append(common_pb2.AnswerEvent(response=orjson.dumps(body), format=common_pb2.OPENAI_CHAT))
        return events
    for chunk in response_to_chunks(body):
        if chunk.get("choices") == [] and not usage_chunk:
            continue
        events.append(common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=orjson.dumps(chunk)),
                                             format=common_pb2.OPENAI_CHAT))
    return events
