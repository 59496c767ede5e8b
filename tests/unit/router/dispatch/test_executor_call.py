"""What an executor call carries: the caller's own body and format when the target's family
speaks that format (and for every operation), else the canonical body, format unspecified."""

from __future__ import annotations

import pytest

from omniroute.v1 import common_pb2, executor_pb2, router_pb2
from omniroute_router.dispatch.executor_call import execute_request, request_body
from omniroute_router.selection.capability import family_format

CANONICAL, OWN = b'{"canonical": true}', b'{"own": true}'


def test_the_router_reads_the_format_of_a_family_from_the_registry() -> None:
    assert family_format("anthropic") == common_pb2.ANTHROPIC
    assert family_format("openai-responses") == common_pb2.OPENAI_RESPONSES
    assert family_format("deepgram") == common_pb2.API_FORMAT_UNSPECIFIED  # no chat API


@pytest.mark.parametrize(("client_format", "family", "expected"), [
    (common_pb2.ANTHROPIC, "anthropic", (OWN, common_pb2.ANTHROPIC)),            # passthrough
    (common_pb2.ANTHROPIC, "openai", (CANONICAL, common_pb2.API_FORMAT_UNSPECIFIED)),
    (common_pb2.GEMINI, "gemini", (OWN, common_pb2.GEMINI)),
    (common_pb2.OPENAI_RESPONSES, "ollama", (CANONICAL, common_pb2.API_FORMAT_UNSPECIFIED)),
])
def test_chat_passthrough_or_canonical(client_format: common_pb2.ApiFormat, family: str,
                                       expected: tuple[bytes, int]) -> None:
    request = router_pb2.ChatRequest(body=CANONICAL, native_body=OWN, client_format=client_format)
    assert request_body(request, family) == expected


def test_an_openai_chat_callers_body_is_the_canonical_one() -> None:
    request = router_pb2.ChatRequest(body=CANONICAL, client_format=common_pb2.OPENAI_CHAT)
    assert request_body(request, "openai") == (CANONICAL, common_pb2.OPENAI_CHAT)
    assert request_body(request, "anthropic") == (CANONICAL, common_pb2.API_FORMAT_UNSPECIFIED)
    assert request_body(router_pb2.ChatRequest(body=CANONICAL), "openai") == (CANONICAL, common_pb2.OPENAI_CHAT)


def test_an_operation_gets_the_callers_body_and_the_rest_of_the_request() -> None:
    request = router_pb2.ChatRequest(request_id="r1", body=OWN, client_format=common_pb2.ANTHROPIC,
                                     operation=common_pb2.OPERATION_COUNT_TOKENS, stream=False)
    request.caller_headers["anthropic-beta"] = "x"
    call = execute_request(request, executor_pb2.Target(family="gemini", model="m"))
    assert call.WhichOneof("call") == "operation"
    assert (call.body, call.body_format, call.operation.kind) == (OWN, common_pb2.ANTHROPIC,
                                                                 common_pb2.OPERATION_COUNT_TOKENS)
    assert call.request_id == "r1" and call.target.model == "m"


def test_a_transcription_carries_its_audio() -> None:
    request = router_pb2.ChatRequest(body=OWN, operation=common_pb2.OPERATION_TRANSCRIPTION,
                                     attachment=common_pb2.Attachment(data=b"audio", filename="a.wav"))
    call = execute_request(request, executor_pb2.Target(family="openai"))
    assert (call.operation.kind, call.operation.attachment.data) == (common_pb2.OPERATION_TRANSCRIPTION, b"audio")


def test_a_chat_call_carries_the_stream_flag_and_the_callers_headers() -> None:
    request = router_pb2.ChatRequest(request_id="r2", body=CANONICAL, native_body=OWN, stream=True,
                                     client_format=common_pb2.ANTHROPIC)
    request.caller_headers["anthropic-beta"] = "x"
    call = execute_request(request, executor_pb2.Target(family="anthropic"))
    assert call.WhichOneof("call") == "chat"
    assert call.chat.stream and dict(call.chat.caller_headers) == {"anthropic-beta": "x"}
    assert (call.body, call.body_format) == (OWN, common_pb2.ANTHROPIC)
