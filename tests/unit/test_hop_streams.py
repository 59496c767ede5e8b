"""Session streams (omniroute.hop_streams): many requests on one long-lived stream, each with
its own cancellation, deadline, back-pressure and trace context; a broken stream fails only the
requests whose answer had begun, the others go to another replica; streams re-open.

Every test runs on both stream transports: gRPC bidi streams (`stream`) and the same sessions on
plain TCP (`tcp`: hop_streams.tcp, its port learnt from the gRPC stream's headers). Real servers
in this process serve `Router.Session` through `hop_streams.server.serve` (and a
`TcpSessionServer`) with a scripted answer function (the request's `model` says what to do); the
client is `RouterStreams`, what the edge uses."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from omniroute import runtime, telemetry
from omniroute.devstack.stack import free_port
from omniroute.hop_streams import server as hop_server
from omniroute.hop_streams.peers import PeerStreams, split_target
from omniroute.hop_streams.stubs import RouterStreams
from omniroute.hop_streams.tcp import TcpSessionServer
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def chunk(data: str) -> common_pb2.AnswerEvent:
    return common_pb2.AnswerEvent(chunk=common_pb2.Chunk(data=data.encode()))


@dataclass
class Script:
    """What one test server does, and what it saw."""

    name: str
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[str] = field(default_factory=list)      # request ids, as they arrived
    cancelled: list[str] = field(default_factory=list)    # request ids whose task was cancelled
    sent: dict[str, int] = field(default_factory=dict)    # request id → events handed over so far

    async def answer(self, request: router_pb2.ChatRequest,
                     parent: otel_context.Context) -> AsyncIterator[common_pb2.AnswerEvent]:
        kind, _, arg = request.model.partition(":")
        self.arrived.append(request.request_id)
        try:
            if kind == "echo":   # arg events: "<request id>/<i>"
                for index in range(int(arg or 1)):
                    yield chunk(f"{request.request_id}/{index}")
            elif kind == "trace":
                yield chunk(format(trace.get_current_span(parent).get_span_context().trace_id, "032x"))
            elif kind == "many":   # as many events as the consumer lets through
                for index in range(int(arg)):
                    self.sent[request.request_id] = index
                    yield chunk(str(index))
            elif kind == "hang":
                await asyncio.Event().wait()
            elif kind == "begun":   # the answer begins at once, ends when released
                yield chunk(self.name)
                await self.release.wait()
                yield chunk("done")
            elif kind == "late":   # nothing until released
                await self.release.wait()
                yield chunk(self.name)
        except asyncio.CancelledError:
            self.cancelled.append(request.request_id)
            raise


#: The transport of the test that runs (the `transport` fixture sets it for every test).
TRANSPORT = "stream"


@pytest.fixture(autouse=True, params=["stream", "tcp"])
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    global TRANSPORT
    TRANSPORT = request.param
    yield TRANSPORT
    TRANSPORT = "stream"


class _Servicer(router_pb2_grpc.RouterServicer):
    def __init__(self, script: Script, tcp: TcpSessionServer) -> None:
        self.script = script
        self.tcp = tcp

    async def Session(self, requests: Any, context: Any) -> AsyncIterator[common_pb2.SessionOut]:
        async for out in hop_server.serve(requests, context, self.script.answer, self.tcp.port):
            yield out


@dataclass
class Served:
    script: Script
    server: grpc.aio.Server
    tcp: TcpSessionServer
    port: int

    async def stop(self) -> None:
        """Killed: every stream to it breaks, on both transports."""
        await asyncio.gather(self.server.stop(None), self.tcp.close(0))


async def serve(name: str, port: int | None = None, host: str = "127.0.0.1") -> Served:
    script = Script(name)
    tcp = TcpSessionServer("/omniroute.v1.Router/Session", router_pb2.RouterSessionIn, script.answer)
    await tcp.start(host, 0)
    server = grpc.aio.server(options=runtime.SERVER_OPTIONS)
    router_pb2_grpc.add_RouterServicer_to_server(_Servicer(script, tcp), server)
    port = server.add_insecure_port(f"{host}:{port or free_port()}")
    await server.start()
    return Served(script, server, tcp, port)


def client(target: str, streams: int = 1, window: int = 64) -> RouterStreams:
    settings = Settings(router_addr=target, hop_streams_per_peer=streams, hop_window=window,
                        hop_transport=TRANSPORT)
    return RouterStreams(settings, unary=None)  # type: ignore[arg-type]   # ListModels is not used here


def request(model: str, request_id: str = "r") -> router_pb2.ChatRequest:
    return router_pb2.ChatRequest(request_id=request_id, model=model, stream=True)


async def texts(call: Any) -> list[str]:
    return [event.chunk.data.decode() async for event in call]


async def ready_streams(router: RouterStreams, count: int) -> None:
    await router.ChatWhole(request("echo:1"))   # the first request opens the set
    for _ in range(200):
        if len([s for address in router.peer.addresses.values() for s in address.streams if s.ready]) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} streams did not open")


@pytest.fixture
async def one() -> AsyncIterator[Served]:
    served = await serve("a")
    yield served
    await served.stop()


async def test_many_concurrent_requests_on_one_stream_each_get_their_own_answer(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}", streams=1)
    try:
        streamed = [texts(router.Chat(request("echo:5", f"s{n}"))) for n in range(50)]
        whole = [router.ChatWhole(request("echo:2", f"w{n}")) for n in range(150)]
        streamed_answers, whole_answers = await asyncio.gather(asyncio.gather(*streamed), asyncio.gather(*whole))
        assert streamed_answers == [[f"s{n}/{i}" for i in range(5)] for n in range(50)]
        assert [[e.chunk.data.decode() for e in answer.events] for answer in whole_answers] == \
            [[f"w{n}/0", f"w{n}/1"] for n in range(150)]
        streams = [s for address in router.peer.addresses.values() for s in address.streams]
        assert len(streams) == 1 and streams[0].in_flight == 0
    finally:
        await router.close()


async def test_requests_spread_over_the_peers_streams(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}", streams=4)
    try:
        await ready_streams(router, 4)
        one.script.arrived.clear()
        calls = [router.Chat(request("hang", f"h{n}")) for n in range(8)]
        iterators = [call.__aiter__() for call in calls]
        tasks = [asyncio.ensure_future(it.__anext__()) for it in iterators]
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(one.script.arrived) == 8:
                break
        streams = [s for address in router.peer.addresses.values() for s in address.streams]
        assert len(one.script.arrived) == 8
        assert sorted(stream.in_flight for stream in streams) == [2, 2, 2, 2]
        for call in calls:
            call.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await router.close()


async def test_cancelling_one_request_cancels_it_alone_on_the_server(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}", streams=1)
    try:
        hanging = [asyncio.create_task(router.ChatWhole(request("hang", f"h{n}"))) for n in range(5)]
        while len(one.script.arrived) < 5:
            await asyncio.sleep(0.01)
        hanging[2].cancel()   # the caller's task (an HTTP client that went away)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if one.script.cancelled:
                break
        assert one.script.cancelled == ["h2"]
        answer = await router.ChatWhole(request("echo:1", "after"))
        assert [e.chunk.data for e in answer.events] == [b"after/0"]
        assert [task.done() for task in hanging] == [False, False, True, False, False]
        for task in hanging:
            task.cancel()
        await asyncio.gather(*hanging, return_exceptions=True)
    finally:
        await router.close()


async def test_a_deadline_fails_the_call_and_stops_the_work_on_the_server(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}")
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await router.ChatWhole(request("hang", "d1"), timeout=0.3)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.25 < asyncio.get_running_loop().time() - started < 1.0
        for _ in range(100):
            if one.script.cancelled:
                break
            await asyncio.sleep(0.01)
        assert one.script.cancelled == ["d1"]
        with pytest.raises(grpc.aio.AioRpcError) as raised:   # a streamed answer too
            await texts(router.Chat(request("hang", "d2"), timeout=0.2))
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await router.close()


async def test_the_deadline_reaches_the_server_which_stops_on_its_own(one: Served) -> None:
    """The server enforces the deadline the start frame carries, even with no cancel from the
    caller (the cancel frame is what a caller sends too; here the frame's own timeout acts)."""
    from omniroute.hop_streams.client import Pending

    router = client(f"127.0.0.1:{one.port}")
    try:
        original = Pending.expire
        Pending.expire = lambda self: None  # type: ignore[method-assign]   # the caller's timer does nothing
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await router.ChatWhole(request("hang", "d3"), timeout=0.2)
        finally:
            Pending.expire = original  # type: ignore[method-assign]
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert one.script.cancelled == ["d3"]
    finally:
        await router.close()


async def test_a_slow_consumer_holds_back_its_own_request_only(one: Served) -> None:
    """Window 8: the server sends request `slow` 8 frames, then waits for credit; `fast`, on the
    same stream, is answered meanwhile; once `slow` is read on, it completes."""
    router = client(f"127.0.0.1:{one.port}", streams=1, window=8)
    try:
        slow = router.Chat(request("many:500", "slow")).__aiter__()
        first = await slow.__anext__()
        assert first.chunk.data == b"0"
        await asyncio.sleep(0.3)
        assert one.script.sent["slow"] <= 9   # window 8 (+ the one waiting for credit)
        fast = await asyncio.wait_for(texts(router.Chat(request("echo:200", "fast"))), 2)
        assert fast == [f"fast/{i}" for i in range(200)]
        rest = [event.chunk.data.decode() async for event in slow]
        assert rest == [str(i) for i in range(1, 500)]
    finally:
        await router.close()


async def test_trace_context_travels_in_the_start_frame(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}")
    try:
        metadata = [("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01")]
        assert await texts(router.Chat(request("trace"), metadata=metadata)) == [TRACE_ID]
        with telemetry.call_span(telemetry.tracer("test"), "outer", otel_context.get_current()):   # what callers pass
            answer = await router.ChatWhole(request("trace"), metadata=telemetry.grpc_metadata())
        assert len(answer.events) == 1
    finally:
        await router.close()


async def test_a_killed_replica_fails_only_answers_that_had_begun_on_it() -> None:
    """Two replicas. Every request is in flight when replica A dies: those whose answer had begun
    on A fail (UNAVAILABLE: the caller has part of an answer), those A had not answered yet are
    started again on B and succeed, B's own succeed. Then A listens again and is used again."""
    a, b = await serve("a"), await serve("b")
    router = client(f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}", streams=2)
    try:
        await ready_streams(router, 4)   # both replicas' streams open (else the first to open takes all)
        begun = [router.Chat(request("begun", f"b{n}")).__aiter__() for n in range(12)]
        firsts = [(await it.__anext__()).chunk.data.decode() for it in begun]
        late = [asyncio.create_task(texts(router.Chat(request("late", f"l{n}")))) for n in range(12)]
        while len(a.script.arrived) + len(b.script.arrived) < 24:
            await asyncio.sleep(0.01)
        late_on_a = [r for r in a.script.arrived if r.startswith("l")]
        assert firsts.count("a") > 0 and late_on_a   # both kinds were on A
        await a.stop()   # killed: its streams break
        b.script.release.set()
        outcomes: list[str] = []
        for it in begun:
            try:
                outcomes.append("".join([event.chunk.data.decode() async for event in it]))
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
        assert outcomes == ["UNAVAILABLE" if first == "a" else "done" for first in firsts]
        assert await asyncio.gather(*late) == [["b"]] * 12   # every late one answered by B
        assert set(late_on_a) <= set(b.script.arrived)

        a2 = await serve("a2", a.port)   # A is back on its address
        a2.script.release.set()
        try:
            for _ in range(40):
                await asyncio.sleep(0.05)
                answers = await asyncio.gather(*(texts(router.Chat(request("late", f"n{n}"))) for n in range(8)))
                if ["a2"] in answers:
                    break
            assert ["a2"] in answers and ["b"] in answers
        finally:
            await a2.stop()
    finally:
        await router.close()
        await b.stop()


async def test_no_replica_listening_is_unavailable_at_once() -> None:
    router = client(f"127.0.0.1:{free_port()}")
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await router.ChatWhole(request("echo:1"))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        await router.close()


async def test_a_draining_server_lets_its_requests_finish_and_its_clients_move_on(one: Served) -> None:
    router = client(f"127.0.0.1:{one.port}", streams=1)
    try:
        running = router.Chat(request("begun", "x")).__aiter__()
        assert (await running.__anext__()).chunk.data == b"a"
        stream = next(iter(router.peer.addresses.values())).streams[0]
        await hop_server.drain_all()
        await asyncio.sleep(0.1)
        assert stream.draining and not stream.closed   # a request still runs on it
        one.script.release.set()
        assert [event.chunk.data async for event in running] == [b"done"]
        for _ in range(50):
            if stream.closed:
                break
            await asyncio.sleep(0.01)
        assert stream.closed   # closed cleanly once idle; the next request opens another
        assert await texts(router.Chat(request("echo:1", "y"))) == ["y/0"]
    finally:
        await router.close()


@pytest.mark.parametrize(("target", "fixed", "host", "port"), [
    ("127.0.0.1:50051", ["127.0.0.1:50051"], None, 0),
    ("ipv4:127.0.0.1:1,127.0.0.1:2", ["ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2"], None, 0),
    ("router:50051", [], "router", 50051),
    ("dns:///omniroute-executor.ns.svc:50061", [], "omniroute-executor.ns.svc", 50061),
])
def test_targets_split_into_addresses_or_a_name_to_resolve(target: str, fixed: list[str], host: str | None,
                                                           port: int) -> None:
    assert split_target(target) == (fixed, host, port)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """A resolver the test controls: name → IPv4 addresses."""
    answers: dict[str, list[str]] = {}

    async def getaddrinfo(self: Any, host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    yield answers


async def test_a_names_addresses_are_followed_as_they_change(dns: dict[str, list[str]]) -> None:
    """A headless Service: the name's answers are the pods (here two loopback addresses of one
    server); a new address gets streams, one no longer listed gets no new request and its stream
    closes once idle."""
    served = await serve("a", host="0.0.0.0")
    dns["pods.test"] = ["127.0.0.1"]
    peer = PeerStreams(f"pods.test:{served.port}", "/omniroute.v1.Router/Session", router_pb2.RouterFrame,
                       router_pb2.RouterSessionIn, streams_per_address=1, window=8, dns_refresh_s=0.05,
                       tcp=TRANSPORT == "tcp")
    try:
        stream = await peer.pick()
        assert list(peer.addresses) == [f"ipv4:127.0.0.1:{served.port}"] and stream.ready
        dns["pods.test"] = ["127.0.0.2"]   # the pod was replaced
        await asyncio.sleep(0.1)
        await peer.pick()   # past the refresh interval: resolved again in the background
        await asyncio.sleep(0.1)
        assert list(peer.addresses) == [f"ipv4:127.0.0.2:{served.port}"]
        assert stream.draining
        chosen = await peer.pick()
        assert chosen.address == f"ipv4:127.0.0.2:{served.port}" and chosen.ready
        for _ in range(50):
            if stream.closed:
                break
            await asyncio.sleep(0.01)
        assert stream.closed
    finally:
        await peer.close()
        await served.stop()


async def test_each_transport_carries_the_sessions_it_names(one: Served, transport: str) -> None:
    """`tcp`: the streams are TCP connections to the port the gRPC stream's headers named;
    `stream`: gRPC calls."""
    from omniroute.hop_streams.tcp import TcpCall

    router = client(f"127.0.0.1:{one.port}", streams=2)
    try:
        assert await texts(router.Chat(request("echo:2", "t"))) == ["t/0", "t/1"]
        streams = [s for address in router.peer.addresses.values() for s in address.streams]
        assert streams and all(isinstance(s._call, TcpCall) == (transport == "tcp") for s in streams)
    finally:
        await router.close()


async def test_a_server_that_names_no_tcp_port_is_reached_on_grpc(transport: str) -> None:
    served = await serve("plain")
    served.tcp.port = 0   # an older server: no TCP sessions named in its headers
    router = client(f"127.0.0.1:{served.port}")
    try:
        assert await texts(router.Chat(request("echo:1", "p"))) == ["p/0"]
        stream = next(iter(router.peer.addresses.values())).streams[0]
        assert isinstance(stream._call, grpc.aio.StreamStreamCall)
    finally:
        await router.close()
        await served.stop()


async def test_a_tcp_session_port_refuses_another_services_sessions(one: Served) -> None:
    from omniroute.hop_streams.tcp import TcpCall

    call = TcpCall("127.0.0.1", one.tcp.port, "/omniroute.v1.Executor/Session")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.initial_metadata()
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    call.cancel()
