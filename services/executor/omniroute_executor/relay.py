"""An upstream answer relayed as AnswerEvents: a whole response, a stream event by event, or a
stream collected into a whole response (an API that only streams, for a caller that did not).

Streams: upstream events are relayed as soon as they are parsed, nothing is held back; events
that arrived in one upstream read go on as one message (ChunkBatch), which keeps per-token
overhead low — except the stream's first chunk, which leaves alone, at once. The family's
decoder reads every event, also in passthrough: it finds the usage, the provider's mid-stream
error and the end of the stream whatever the caller's format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from omniroute.formats import FormatError
from omniroute.formats.canonical import Usage
from omniroute.formats.errors import UpstreamStreamError
from omniroute.formats.framing import NDJSONParser, SSEParser
from omniroute.v1 import common_pb2
from omniroute_executor import upstream, upstream_errors
from omniroute_executor.families.base import Family, Json
from omniroute_executor.provider_body import ProviderBody


def error_event(error: common_pb2.Error) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(error=error)


def too_slow(limit_s: float, what: str) -> common_pb2.Error:
    return common_pb2.Error(status=504, type="upstream_error", code="upstream_timeout", retryable=True,
                            message=f"the upstream provider sent no complete {what} within {limit_s:g}s")


async def relay_whole(family: Family, answer: upstream.UpstreamAnswer, sent: ProviderBody,
                      limit_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    async with asyncio.timeout(limit_s):
        raw = await answer.read()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield error_event(upstream_errors.bad_stream("the upstream answer is not valid JSON"))
        return
    if family.unwrap is not None and isinstance(parsed, dict):
        parsed = family.unwrap(parsed)
        raw = orjson.dumps(parsed)
    async for event in _whole_answer(family, parsed, raw, sent):
        yield event


async def relay_collected(family: Family, answer: upstream.UpstreamAnswer, sent: ProviderBody,
                          limit_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    """A whole answer from an upstream stream (an API that only streams, for a caller that did
    not ask to): the family collects the complete stream's events into its whole response. A
    mid-stream error or a stream that stops early fails as in relay_stream."""
    assert family.collect is not None  # chat.py collects only for such families
    async with asyncio.timeout(limit_s):  # the whole answer, as relay_whole's body
        events, error = await _complete_stream(family, answer, limit_s)
    if error is not None:
        yield error_event(error)
        return
    whole = family.collect(events)
    async for event in _whole_answer(family, whole, orjson.dumps(whole), sent):
        yield event


async def _complete_stream(family: Family, answer: upstream.UpstreamAnswer,
                           idle_s: float) -> tuple[list[tuple[str, Json]], common_pb2.Error | None]:
    """Every event of the stream, or the error that ends it early."""
    decoder = family.module.StreamDecoder()
    events: list[tuple[str, Json]] = []
    ended = False
    async for group in _event_groups(family, answer, idle_s):
        for name, text in group:
            if family.end_marker and text == family.end_marker:
                ended = True
                continue
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                return events, upstream_errors.bad_stream("the upstream stream sent invalid JSON")
            if not isinstance(data, dict):
                continue
            if family.unwrap is not None:
                data = family.unwrap(data)
            try:
                decoder.feed(name, data)
            except UpstreamStreamError as exc:
                return events, _stream_error(exc)
            ended = ended or family.ends_stream(name, data)
            events.append((name, data))
    if not ended:
        return events, upstream_errors.bad_stream("the upstream stream ended before it was complete")
    return events, None


async def _whole_answer(family: Family, parsed: object, raw: bytes,
                        sent: ProviderBody) -> AsyncIterator[common_pb2.AnswerEvent]:
    """A whole upstream answer (`raw`, parsed) as the response event and its usage."""
    try:
        if not isinstance(parsed, dict):
            raise FormatError("the upstream answer is not a JSON object")
        # Translated even in passthrough: the canonical usage is what accounting reads.
        canonical = family.module.response_to_canonical(parsed)
    except FormatError as exc:
        yield error_event(upstream_errors.bad_stream(exc.message))
        return
    body = raw if sent.passthrough else orjson.dumps(canonical)
    yield common_pb2.AnswerEvent(response=body, format=sent.out_format)
    usage = _usage_proto(canonical.get("usage"))
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


async def relay_stream(family: Family, answer: upstream.UpstreamAnswer, sent: ProviderBody,
                       idle_s: float) -> AsyncIterator[common_pb2.AnswerEvent]:
    """Fails the stream (an error event) on a stall of `idle_s` without a complete event, on
    an event that is not JSON, on the provider's mid-stream error and on a stream that stops
    before its end: the caller must not take a truncated answer for a whole one."""
    decoder = family.module.StreamDecoder()
    out_format, passthrough = sent.out_format, sent.passthrough
    usage: common_pb2.Usage | None = None
    ended = False
    first = True   # the stream's first chunk goes alone, before the rest of its read is decoded
    groups = _event_groups(family, answer, idle_s)
    while True:
        try:
            group = await anext(groups)
        except StopAsyncIteration:
            break
        except TimeoutError:
            yield error_event(too_slow(idle_s, "stream event"))
            return
        out: list[common_pb2.Chunk] = []
        for name, text in group:
            if family.end_marker and text == family.end_marker:
                ended = True
                continue
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                if out:
                    yield chunks_event(out, out_format)
                yield error_event(upstream_errors.bad_stream("the upstream stream sent invalid JSON"))
                return
            if not isinstance(data, dict):
                continue
            if family.unwrap is not None:
                data = family.unwrap(data)
                text = orjson.dumps(data).decode()
            try:
                chunks = decoder.feed(name, data)
            except UpstreamStreamError as exc:
                if out:
                    yield chunks_event(out, out_format)
                yield error_event(_stream_error(exc))
                return
            ended = ended or family.ends_stream(name, data)
            usage = _last_usage(chunks) or usage
            if not passthrough:
                out.extend(common_pb2.Chunk(data=orjson.dumps(chunk)) for chunk in chunks)
            elif sent.caller_wants_usage or family.accounting_only is None or not family.accounting_only(data):
                out.append(common_pb2.Chunk(event=name, data=text.encode()))
            if first and out:
                first = False
                yield chunks_event(out, out_format)
                out = []
                # Let the frame leave now: the time to first byte is one upstream read plus
                # the hops, not the decoding of everything else that came in that read.
                await asyncio.sleep(0)
        if out:
            yield chunks_event(out, out_format)
    tail = decoder.finish()
    usage = _last_usage(tail) or usage
    if not ended:
        yield error_event(upstream_errors.bad_stream("the upstream stream ended before it was complete"))
        return
    if not passthrough and tail:
        yield chunks_event([common_pb2.Chunk(data=orjson.dumps(chunk)) for chunk in tail], out_format)
    if usage is not None:
        yield common_pb2.AnswerEvent(usage=usage)


def chunks_event(chunks: list[common_pb2.Chunk], out_format: common_pb2.ApiFormat) -> common_pb2.AnswerEvent:
    """One chunk as `chunk`, several as a `chunks` batch."""
    if len(chunks) == 1:
        return common_pb2.AnswerEvent(chunk=chunks[0], format=out_format)
    return common_pb2.AnswerEvent(chunks=common_pb2.ChunkBatch(items=chunks), format=out_format)


async def _event_groups(family: Family, answer: upstream.UpstreamAnswer,
                        idle_s: float) -> AsyncIterator[list[tuple[str, str]]]:
    """(event name, data) of the upstream events completed by each read, SSE or NDJSON: the
    events that arrived together travel on together, and none waits for a later read.
    Raises TimeoutError when `idle_s` pass without a complete event (a stalled stream)."""
    progressed = [False]
    if family.framing == "ndjson":
        lines = NDJSONParser()
        async for pieces in _piece_batches(answer, idle_s, progressed):
            if group := [("", line.decode("utf-8", errors="replace")) for line in lines.feed(b"".join(pieces))]:
                progressed[0] = True
                yield group
        if tail := [("", line.decode("utf-8", errors="replace")) for line in lines.flush()]:
            yield tail
        return
    parser = SSEParser()
    async for pieces in _piece_batches(answer, idle_s, progressed):
        if frames := [(frame.event, frame.data) for frame in parser.feed(b"".join(pieces))]:
            progressed[0] = True
            yield frames
    if frames := [(frame.event, frame.data) for frame in parser.flush()]:
        yield frames


async def _piece_batches(answer: upstream.UpstreamAnswer, idle_s: float,
                         progressed: list[bool]) -> AsyncIterator[list[bytes]]:
    """The body's bytes, as lists of the pieces that are ready together.

    A reader task pulls pieces into a small bounded queue (so TCP backpressure still reaches the
    upstream); each batch is everything queued at the moment it is taken, so nothing waits for
    a later piece, yet a burst (many tokens in one read) becomes one batch, not a hundred.
    Raises TimeoutError when `idle_s` pass without a complete event: the caller sets
    `progressed[0]` when a batch completed one, and only then does the clock restart — when the
    next batch is awaited, so a slow client downstream never counts against the upstream."""
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(maxsize=256)

    async def read() -> None:
        try:
            async for piece in answer.pieces():
                await queue.put(piece)
            await queue.put(None)
        except Exception as exc:  # handed to the consumer, which raises it in order
            await queue.put(exc)

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + idle_s
    try:
        while True:
            if progressed[0]:
                deadline, progressed[0] = loop.time() + idle_s, False
            async with asyncio.timeout_at(deadline):
                item = await queue.get()
            batch: list[bytes] = []
            while isinstance(item, bytes):
                batch.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                yield batch
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def _usage_proto(usage: object) -> common_pb2.Usage | None:
    """Canonical (OpenAI-shaped) usage JSON → the proto accounting reads."""
    if not isinstance(usage, dict):
        return None
    counts = Usage.from_openai(usage)
    return common_pb2.Usage(input_tokens=counts.prompt, output_tokens=counts.completion,
                            cached_tokens=counts.cached, reasoning_tokens=counts.reasoning,
                            cache_write_tokens=counts.cache_creation)


def _last_usage(chunks: list[Json]) -> common_pb2.Usage | None:
    usage = None
    for chunk in chunks:
        usage = _usage_proto(chunk.get("usage")) or usage
    return usage


def _stream_error(exc: UpstreamStreamError) -> common_pb2.Error:
    return common_pb2.Error(status=exc.status, type=exc.type, code="upstream_stream_error",
                            message=exc.message, retryable=False)
