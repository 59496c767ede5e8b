"""Reading AnswerEvent streams: one place that knows a chunk may come alone or in a batch."""

from __future__ import annotations

from collections.abc import Sequence

from omniroute.v1 import common_pb2

CHUNK_KINDS = ("chunk", "chunks")


def chunks_of(event: common_pb2.AnswerEvent) -> Sequence[common_pb2.Chunk]:
    """The stream chunks an event carries, in order (none for other kinds of event)."""
    kind = event.WhichOneof("kind")
    if kind == "chunk":
        return (event.chunk,)
    if kind == "chunks":
        return event.chunks.items
    return ()
