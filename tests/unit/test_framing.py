"""SSE / NDJSON framing: incremental, any split point, any line ending."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from omniroute.formats.framing import NDJSONParser, SSEEvent, SSEParser, encode_sse

STREAM = (b'event: message_start\ndata: {"a":1}\n\n: keep-alive\n\n'
          b'data: {"b":2}\r\n\r\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n')
EXPECTED = [SSEEvent("message_start", '{"a":1}'), SSEEvent("", '{"b":2}'),
            SSEEvent("", "line1\nline2"), SSEEvent("", "[DONE]")]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser, events, start = SSEParser(), [], 0
    for cut in sorted(set(cuts)):
        events += parser.feed(data[start:cut])
        start = cut
    return events + parser.feed(data[start:]) + parser.flush()


def test_whole_stream() -> None:
    assert parse_in_pieces(STREAM, []) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    assert parse_in_pieces(STREAM, cuts) == EXPECTED


def test_a_character_split_across_reads_is_decoded_whole() -> None:
    frame = 'data: {"t":"héllo ✓"}\n\n'.encode()
    cut = frame.index("✓".encode()) + 1  # inside the three bytes of ✓
    parser = SSEParser()
    assert parser.feed(frame[:cut]) == []
    assert parser.feed(frame[cut:]) == [SSEEvent("", '{"t":"héllo ✓"}')]


def test_many_frames_in_one_read() -> None:
    frames = b"".join(b'data: {"i":%d}\r\n\r\n' % i for i in range(500))
    assert [event.data for event in SSEParser().feed(frames)] == [f'{{"i":{i}}}' for i in range(500)]


def test_final_frame_without_blank_line_is_flushed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]\r") == []
    assert parser.flush() == [SSEEvent("", "[DONE]")]


def test_encode_round_trip() -> None:
    frame = encode_sse(b'{"x":1}', "content_block_delta")
    assert frame == b'event: content_block_delta\ndata: {"x":1}\n\n'
    assert SSEParser().feed(frame) == [SSEEvent("content_block_delta", '{"x":1}')]


def test_ndjson_partial_lines() -> None:
    parser = NDJSONParser()
    assert parser.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert parser.feed(b':2}\n\n') == [b'{"b":2}']
    assert parser.feed(b'{"c":3}') == []
    assert parser.flush() == [b'{"c":3}']
