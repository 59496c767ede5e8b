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


#: The type and code of an error that is a bug in OmniRoute itself (an unexpected exception):
#: HTTP 500 for the caller, in its own format. 502/503/504 mean an upstream or a backing
#: service failed; this never does.
INTERNAL_ERROR = "internal_error"


def internal_error() -> common_pb2.Error:
    """The answer's error for an unexpected exception, which the service where it happened has
    logged with its traceback. Not retryable: another target would not fix our own bug, and no
    connection is to blame."""
    return common_pb2.Error(status=500, type=INTERNAL_ERROR, code=INTERNAL_ERROR, retryable=False,
                            message="The gateway failed on an internal error; it has been logged.")
