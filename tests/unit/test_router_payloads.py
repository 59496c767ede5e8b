"""Detailed logging in the router (omniroute_router.pipeline.payloads): what a usage event carries."""

from __future__ import annotations

import json

import orjson

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.v1 import common_pb2
from omniroute_router.pipeline.payloads import LIMIT, Capture, enabled
from omniroute_router.pipeline.record import RequestRecord

SECRET = "sk-live-THISISSECRET0123456789"
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": f"my key {SECRET}"}]})


def _chunk(data: dict[str, object]) -> common_pb2.Chunk:
    return common_pb2.Chunk(data=orjson.dumps(data))


def _delta(text: str) -> dict[str, object]:
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}


def test_off_unless_the_general_setting_says_true() -> None:
    assert not enabled(ConfigSnapshot())
    assert not enabled(ConfigSnapshot(settings={"general": {"instance_name": "x"}}))
    assert not enabled(ConfigSnapshot(settings={"general": {"detailed_logging": "yes"}}))
    assert enabled(ConfigSnapshot(settings={"general": {"detailed_logging": True}}))


def test_no_capture_no_payloads() -> None:
    event = RequestRecord(request_id="r", key_id="k", requested_model="m", client_format=1,
                          stream=False).to_event()
    assert event.request_payload == b"" and event.response_payload == b""


def test_non_streaming_answer_is_the_response_redacted() -> None:
    record = RequestRecord(request_id="r", key_id="k", requested_model="m", client_format=1, stream=False)
    record.capture = Capture(BODY)
    answer = {"choices": [{"message": {"content": f"echo {SECRET}"}}]}
    record.capture.add(common_pb2.AnswerEvent(response=orjson.dumps(answer)))
    event = record.to_event()
    assert b"THISISSECRET" not in event.request_payload + event.response_payload
    assert json.loads(event.request_payload)["messages"][0]["content"] == "my key sk-[REDACTED]"
    assert json.loads(event.response_payload)["choices"][0]["message"]["content"] == "echo sk-[REDACTED]"


def test_streamed_canonical_chunks_are_assembled_into_one_answer() -> None:
    capture = Capture(BODY)
    capture.add(common_pb2.AnswerEvent(chunk=_chunk(_delta("Hello "))))
    capture.add(common_pb2.AnswerEvent(chunks=common_pb2.ChunkBatch(items=[
        _chunk(_delta("world")), _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})])))
    _, response = capture.payloads()
    answer = json.loads(response)
    assert answer["choices"][0]["message"]["content"] == "Hello world"
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_passthrough_chunks_are_kept_as_sse_lines() -> None:
    capture = Capture(BODY)
    capture.add(common_pb2.AnswerEvent(format=common_pb2.ANTHROPIC, chunk=common_pb2.Chunk(
        event="content_block_delta", data=b'{"delta":{"text":"hi"}}')))
    _, response = capture.payloads()
    assert response == b'event: content_block_delta\ndata: {"delta":{"text":"hi"}}\n\n'


def test_payloads_are_capped() -> None:
    capture = Capture(orjson.dumps({"messages": [{"role": "user", "content": "word " * 50_000}]}))
    capture.add(common_pb2.AnswerEvent(response=b"x " * 100_000))
    request, response = capture.payloads()
    assert len(request) <= LIMIT and len(response) <= LIMIT
    assert request.decode().endswith("bytes in all]") and response.decode().endswith("bytes in all]")
