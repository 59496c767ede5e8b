"""A bug inside the gateway is a 500 `internal_error` in the caller's format, logged once with its
traceback where it happened — never disguised as 502/503 (an upstream or a backing service).

The router and the executor are the real servicers, served over real gRPC; only the step that
fails is replaced, in the test, by one that raises. The edge is the real app in front of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import anthropic
import grpc
import httpx
import httpx2
import openai
import orjson
import pytest

from omniroute import runtime
from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute.config.watcher import SnapshotHolder
from omniroute.devstack.stack import free_port
from omniroute.executor_pool import ExecutorPool
from omniroute.secrets import hash_api_key
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2, executor_pb2, router_pb2, router_pb2_grpc
from omniroute_edge.app import create_app
from omniroute_edge.state import EdgeState
from omniroute_executor.families.base import Family
from omniroute_executor.servicer import ExecutorServicer
from omniroute_router.pipeline.call import Call, Next, Stage
from omniroute_router.servicer import RouterServicer
from omniroute_router.state import RouterState

CHAT = {"model": "p/m", "messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-omni-internal-errors-0123456789"


def edge_config(settings: Settings) -> SnapshotHolder:
    """The edge's config: one API key, KEY."""
    holder = SnapshotHolder(settings, decrypt=False)
    holder.current = ConfigSnapshot(keys_by_hash={hash_api_key(KEY): ApiKey(
        id="k1", name="k", enabled=True, allowed_models=None, limits={}, budget=None, expires_at=None)})
    return holder


class Published:
    """Stands in for the JetStream publisher: keeps the usage events."""

    def __init__(self) -> None:
        self.events: list[events_pb2.UsageEvent] = []

    async def publish_confirmed(self, subject: str, data: bytes, **fields: Any) -> bool:
        self.publish(subject, data, **fields)
        return True

    def publish(self, subject: str, data: bytes, **_: Any) -> None:
        self.events.append(events_pb2.UsageEvent.FromString(data))


class Gateway:
    def __init__(self, servicer: RouterServicer, published: Published, edge: httpx.AsyncClient,
                 app: Any) -> None:
        self.servicer, self.published, self.edge, self.app = servicer, published, edge, app

    def sdk_http(self) -> httpx2.AsyncClient:
        """The HTTP client the official SDKs use (httpx2), talking to the edge app in process."""
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app, raise_app_exceptions=False))


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """The real router servicer on a gRPC port, and the real edge app calling it."""
    published = Published()
    shared = RouterState.connect(settings)
    servicer = RouterServicer(settings, SnapshotHolder(settings, decrypt=False), ExecutorPool(settings),
                              cast(Any, published), shared)
    server = grpc.aio.server(options=runtime.SERVER_OPTIONS)
    router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    app = create_app(settings)
    app.state.edge = EdgeState(settings=settings, config=edge_config(settings),
                               router=router_pb2_grpc.RouterStub(channel), admin=httpx.AsyncClient())
    # Starlette re-raises a route's exception after answering (for the server to log it).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://edge", timeout=20,
                                     headers={"authorization": f"Bearer {KEY}"}) as edge:
            yield Gateway(servicer, published, edge, app)
    finally:
        await app.state.edge.admin.aclose()
        await channel.close()
        await server.stop(None)
        await shared.close()


def answering(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, stage: Stage) -> None:
    """The chat pipeline's stages after the record and the guard become `stage` alone."""
    chat = gateway.servicer.chat
    monkeypatch.setattr(chat, "stages", [*chat.stages[:2], stage])


def failing_answer(events_before: int) -> Stage:
    """A stage that raises after `events_before` events (0: before the answer starts)."""
    async def answer(call: Call, next: Next) -> AsyncIterator[common_pb2.AnswerEvent]:
        events = [common_pb2.AnswerEvent(start=common_pb2.ResponseStart(provider="p", model="m")),
                  common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=orjson.dumps(
                      {"choices": [{"index": 0, "delta": {"content": "par"}}]})))]
        for event in events[:events_before]:
            yield event
        raise RuntimeError("injected")
    return answer


def logged_tracebacks(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.exc_info and "injected" in str(r.exc_info[1])]


#: route → (body, how that format's client reads the error's kind)
ROUTES: dict[str, tuple[dict[str, Any], Callable[[Any], object], object]] = {
    "/v1/chat/completions": (CHAT, lambda b: b["error"]["type"], "internal_error"),
    "/v1/responses": ({"model": "p/m", "input": "hi"}, lambda b: b["error"]["type"], "internal_error"),
    "/v1/messages": ({**CHAT, "max_tokens": 10}, lambda b: (b["type"], b["error"]["type"]), ("error", "api_error")),
    "/v1beta/models/p/m:generateContent": ({"contents": [{"parts": [{"text": "hi"}]}]},
                                           lambda b: b["error"]["status"], "INTERNAL"),
    "/api/chat": ({**CHAT, "stream": False}, lambda b: isinstance(b["error"], str), True),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_a_router_bug_is_500_internal_error_in_each_format(
        gateway: Gateway, route: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    answering(gateway, monkeypatch, failing_answer(0))
    body, kind, expected = ROUTES[route]
    response = await gateway.edge.post(route, json=body)
    assert response.status_code == 500, response.text
    assert kind(response.json()) == expected, response.text
    assert "injected" not in response.text and "Traceback" not in response.text
    assert len(logged_tracebacks(caplog, "omniroute.router")) == 1   # logged once, where it happened
    [usage] = gateway.published.events
    assert (usage.status, usage.error_class) == (500, "internal_error")


async def test_a_router_bug_mid_stream_ends_the_stream_with_an_internal_error_event(
        gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    answering(gateway, monkeypatch, failing_answer(2))
    for route, body, marker in (
            ("/v1/chat/completions", {**CHAT, "stream": True}, b'"type":"internal_error"'),
            ("/v1/messages", {**CHAT, "max_tokens": 10, "stream": True}, b'"type":"api_error"'),
            ("/v1beta/models/p/m:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": "hi"}]}]},
             b'"status":"INTERNAL"')):
        response = await gateway.edge.post(route, json=body)
        assert response.status_code == 200   # the answer had started: the error is its last event
        assert b"par" in response.content and marker in response.content, response.content
        assert b"[DONE]" not in response.content
    assert len(logged_tracebacks(caplog, "omniroute.router")) == 3


async def test_official_sdks_see_an_internal_server_error(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    answering(gateway, monkeypatch, failing_answer(0))
    async with openai.AsyncOpenAI(base_url="http://edge/v1", api_key=KEY, http_client=gateway.sdk_http(),
                                  max_retries=0) as oai:
        with pytest.raises(openai.InternalServerError) as raised:
            await oai.chat.completions.create(model="p/m", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 500 and raised.value.type == "internal_error"
    async with anthropic.AsyncAnthropic(base_url="http://edge", api_key=KEY, http_client=gateway.sdk_http(),
                                        max_retries=0) as claude:
        with pytest.raises(anthropic.InternalServerError) as failed:
            await claude.messages.create(model="p/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert failed.value.status_code == 500 and failed.value.type == "api_error"


async def test_a_bug_listing_models_is_500_and_a_bug_in_the_edge_too(
        gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object) -> router_pb2.ListModelsResponse:
        raise RuntimeError("injected")
    monkeypatch.setattr("omniroute_router.servicer.list_models", broken)
    response = await gateway.edge.get("/v1/models")
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert len(logged_tracebacks(caplog, "omniroute.router")) == 1

    # A whole answer the edge cannot read (a canonical body that is not JSON): the edge's own
    # code raises, and the caller still gets its format's 500, not a bare "Internal Server Error".
    async def garbled(call: Call, next: Next) -> AsyncIterator[common_pb2.AnswerEvent]:
        yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(provider="p", model="m"))
        yield common_pb2.AnswerEvent(response=b"{not json", format=common_pb2.OPENAI_CHAT)
    answering(gateway, monkeypatch, garbled)
    response = await gateway.edge.post("/v1/messages", json={**CHAT, "max_tokens": 10})
    assert response.status_code == 500, response.text
    assert response.json() == {"type": "error", "error": {"type": "api_error", "message": response.json()[
        "error"]["message"]}}


async def test_a_router_that_is_not_there_is_still_503(settings: Settings) -> None:
    app = create_app(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")   # nobody listens
    app.state.edge = EdgeState(settings=settings, config=edge_config(settings),
                               router=router_pb2_grpc.RouterStub(channel), admin=httpx.AsyncClient())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge",
                                 headers={"authorization": f"Bearer {KEY}"}) as edge:
        response = await edge.post("/v1/chat/completions", json=CHAT)
    await channel.close()
    await app.state.edge.admin.aclose()
    assert response.status_code == 503 and response.json()["error"]["code"] == "router_unavailable"


class _Context:
    def invocation_metadata(self) -> tuple[()]:
        return ()


@pytest.fixture
def broken_executor() -> Iterator[ExecutorServicer]:
    def canonical_to_request(canonical: object, model: str) -> object:
        raise RuntimeError("injected")
    family = SimpleNamespace(native_format=common_pb2.ANTHROPIC,
                             module=SimpleNamespace(canonical_to_request=canonical_to_request))
    yield ExecutorServicer({"anthropic": cast(Family, family)}, httpx.AsyncClient(), 5.0)


async def test_an_executor_bug_is_500_internal_error_not_a_502(broken_executor: ExecutorServicer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    request = executor_pb2.ExecuteRequest(request_id="r1", body=orjson.dumps(CHAT),
                                          target=executor_pb2.Target(family="anthropic", model="m"))
    whole = await broken_executor.ExecuteWhole(request, cast(Any, _Context()))
    [event] = whole.events
    assert (event.error.status, event.error.type, event.error.code, event.error.retryable) == \
        (500, "internal_error", "internal_error", False)
    assert len(logged_tracebacks(caplog, "omniroute.executor")) == 1
