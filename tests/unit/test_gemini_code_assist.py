"""The Code Assist family (the Gemini CLI preset's API): the wrapper around Gemini bodies, the
answers unwrapped for every reader, and the account's project found once (onboarded if new)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor import upstream
from omniroute_executor.families import FAMILIES, gemini_code_assist
from omniroute_executor.families.base import Json, UpstreamRefused
from omniroute_executor.provider_body import ProviderBody
from omniroute_executor.relay import relay_stream, relay_whole

FAMILY = FAMILIES["gemini-code-assist"]
BASE = "https://cloudcode-pa.googleapis.com/v1internal"


def _target(token: str = "ya29.a", project: str = "") -> executor_pb2.Target:
    target = executor_pb2.Target(provider_id="gemini-cli", connection="me", family=FAMILY.name, base_url=BASE,
                                 model="gemini-2.5-pro", api_key=token, auth="oauth")
    if project:
        target.params["project"] = project
    return target


def test_requests_are_wrapped_with_the_project() -> None:
    body: Json = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url, headers = FAMILY.prepare(_target(project="p-1"), True, body)
    assert url == f"{BASE}:streamGenerateContent?alt=sse" and headers["authorization"] == "Bearer ya29.a"
    assert body == {"model": "gemini-2.5-pro", "project": "p-1",
                    "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}
    assert FAMILY.prepare(_target(project="p-1"), False, {})[0] == f"{BASE}:generateContent"


def _frame(text: str, final: bool) -> Json:
    candidate: Json = {"content": {"role": "model", "parts": [{"text": text}]}}
    inner: Json = {"candidates": [candidate]}
    if final:
        candidate["finishReason"] = "STOP"
        inner["usageMetadata"] = {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}
    return {"response": inner, "traceId": "t"}


def _answer(raw: bytes) -> upstream.UpstreamAnswer:
    async def pieces() -> AsyncIterator[bytes]:
        yield raw

    async def read() -> bytes:
        return raw

    async def close() -> None:
        return None

    return upstream.UpstreamAnswer(200, [], pieces, read, close)


def _run(relay: Any, raw: bytes, passthrough: bool) -> list[common_pb2.AnswerEvent]:
    sent = ProviderBody({}, passthrough=passthrough, out_format=FAMILY.native_format if passthrough
                        else common_pb2.OPENAI_CHAT, caller_wants_usage=True)

    async def run() -> list[common_pb2.AnswerEvent]:
        return [event async for event in relay(FAMILY, _answer(raw), sent, 5.0)]
    return asyncio.run(run())


def test_answers_are_unwrapped_whole_and_streamed() -> None:
    whole = _run(relay_whole, orjson.dumps(_frame("Hello", True)), passthrough=True)
    assert "response" not in orjson.loads(whole[0].response)  # a Gemini caller gets Gemini's shape
    assert orjson.loads(whole[0].response)["candidates"][0]["content"]["parts"] == [{"text": "Hello"}]
    assert whole[1].usage.input_tokens == 4
    raw = b"".join(b"data: " + orjson.dumps(_frame(t, f)) + b"\r\n\r\n" for t, f in (("Hel", False), ("lo", True)))
    events = _run(relay_stream, raw, passthrough=True)
    chunks = [orjson.loads(e.chunk.data) for e in events if e.WhichOneof("kind") == "chunk"] + \
        [orjson.loads(c.data) for e in events if e.WhichOneof("kind") == "chunks" for c in e.chunks.items]
    assert chunks and all("response" not in c for c in chunks)
    assert events[-1].WhichOneof("kind") == "usage"  # the end was seen through the wrapper
    translated = _run(relay_stream, raw, passthrough=False)
    assert all(e.WhichOneof("kind") != "error" for e in translated)


class FakeCodeAssist:
    """loadCodeAssist without a project, onboardUser done on its second call."""

    def __init__(self, refuse: int = 0) -> None:
        self.calls: list[tuple[str, Json]] = []
        self.refuse = refuse

    async def post(self, url: str, body: Json) -> tuple[int, Json]:
        self.calls.append((url.rsplit(":", 1)[-1], body))
        if self.refuse:
            return self.refuse, {"error": {"code": self.refuse, "message": "no", "status": "UNAUTHENTICATED"}}
        if url.endswith(":loadCodeAssist"):
            return 200, {"allowedTiers": [{"id": "standard-tier"}, {"id": "free-tier", "isDefault": True}]}
        onboards = sum(1 for method, _ in self.calls if method == "onboardUser")
        if onboards == 1:
            return 200, {"name": "operations/1", "done": False}
        return 200, {"name": "operations/1", "done": True, "response": {"cloudaicompanionProject": {"id": "p-9"}}}


def _find(target: executor_pb2.Target, api: FakeCodeAssist) -> dict[str, str]:
    assert FAMILY.find_params is not None
    find = FAMILY.find_params

    async def run() -> dict[str, str]:
        return await find(target, api.post)
    return asyncio.run(run())


def test_the_project_is_found_once_per_connection_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemini_code_assist, "ONBOARD_POLL_S", 0.0)
    monkeypatch.setattr(gemini_code_assist, "_projects", {})
    api = FakeCodeAssist()
    assert _find(_target(), api) == {"project": "p-9"}
    assert [m for m, _ in api.calls] == ["loadCodeAssist", "onboardUser", "onboardUser"]
    assert api.calls[1][1]["tierId"] == "free-tier" and api.calls[1][1]["metadata"]["pluginType"] == "GEMINI"
    _find(_target(), api)
    assert len(api.calls) == 3  # kept
    _find(_target(token="ya29.new"), api)
    assert [m for m, _ in api.calls[3:]] == ["loadCodeAssist", "onboardUser"]  # a new token asks again


def test_a_refused_setup_is_the_upstream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemini_code_assist, "_projects", {})
    with pytest.raises(UpstreamRefused) as refused:
        _find(_target(), FakeCodeAssist(refuse=401))
    assert refused.value.status == 401
