"""Answers kept in Redis and played back: idempotency keeps the events themselves; the exact
cache keeps the canonical `chat.completion` and plays it back as JSON or as a stream."""

from __future__ import annotations

from typing import Any

import orjson

from omniroute.answers import CHUNK_KINDS, chunks_of
from omniroute.formats.canonical import StreamAccumulator, response_to_chunks
from omniroute.v1 import common_pb2


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


class Collector:
    """Assembles a canonical answer from the events as they pass (None when it cannot be kept:
    an error, or chunks in a caller's native format that the accumulator does not read)."""

    def __init__(self) -> None:
        self.start: common_pb2.ResponseStart | None = None
        self.response: bytes | None = None
        self.accumulator: StreamAccumulator | None = None
        self.usage: common_pb2.Usage | None = None
        self.valid = True

    def add(self, event: common_pb2.AnswerEvent) -> None:
        kind = event.WhichOneof("kind")
        if kind == "start":
            self.start = event.start
        elif kind == "usage":
            self.usage = event.usage
        elif kind == "error" or (kind in (*CHUNK_KINDS, "response")
                                 and event.format != common_pb2.OPENAI_CHAT):
            self.valid = False
        elif kind == "response":
            self.response = event.response
        elif kind in CHUNK_KINDS:
            self.accumulator = self.accumulator or StreamAccumulator()
            for chunk in chunks_of(event):
                self.accumulator.add(orjson.loads(chunk.data))

    def entry(self) -> bytes | None:
        if not self.valid or self.start is None:
            return None
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
        return orjson.dumps({"provider": self.start.provider, "connection": self.start.connection,
                             "model": self.start.model, "combo": self.start.combo, "body": body})


def cached_events(entry: bytes, *, stream: bool, usage_chunk: bool,
                  headers: dict[str, str]) -> list[common_pb2.AnswerEvent]:
    """A cache entry as the events of a fresh answer (no usage event: a hit costs nothing)."""
    value = orjson.loads(entry)
    start = common_pb2.ResponseStart(provider=value["provider"], connection=value["connection"],
                                     model=value["model"], combo=value.get("combo", ""), headers=headers)
    events = [common_pb2.AnswerEvent(start=start)]
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
