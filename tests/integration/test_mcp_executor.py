"""The MCP executor (issue 21) as the router reaches it: `python -m omniroute_executor --family
mcp` serving McpUpstream, against mock tool servers built with the official `mcp` SDK
(tests/mocks/mcp_tools.py): the Streamable HTTP one (its own process, killable) and the stdio
one (started and kept by the executor). Listing, each call method, the injected credentials,
the per-call timeout, a dead or dying server, an HTTP 401, and the stdio process kept and
restarted. SSRF: a URL refused by name, and a public-looking name that resolves to 127.0.0.1
refused at connect time (no TCP connection) unless private addresses are allowed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest

from omniroute.devstack import child
from omniroute.v1 import mcp_pb2, mcp_pb2_grpc
from tests import log_scan
from tests.hosts import name_resolving_to, public_looking_name
from tests.mocks.mcp_tools import README_TEXT, README_URI, McpHttpMock, free_port, stdio_command
from tests.mocks.oauth import OAuthServer
from tests.mocks.tcp_relay import CountingRelay
from tests.support import wait_for

pytestmark = pytest.mark.xdist_group("mcp_executor")
SECRET = "tool-server-secret-7f3a"


@contextlib.contextmanager
def running_executor(logs: Path, family: str = "mcp", extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m omniroute_executor --family <family>`; its address while it runs."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (logs / "executor.log").open("ab") as log_file, log_scan.watched(logs, "mcp-executor") as watched:
        process = subprocess.Popen(child.command("omniroute_executor", "--family", family),
                                   env={**os.environ, "EXECUTOR_PORT": str(port), **(extra_env or {})},
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            def listening() -> bool:
                assert process.poll() is None, "the MCP executor exited"
                return b"gRPC listening" in (logs / "executor.log").read_bytes()

            wait_for(listening, timeout=30)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)
            watched.assert_clean("after the MCP executor stopped")


@pytest.fixture(scope="module")
def executor_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_executor(tmp_path_factory.mktemp("mcp-executor") / "logs") as address:
        yield address


@pytest.fixture
async def upstream(executor_address: str) -> AsyncIterator[mcp_pb2_grpc.McpUpstreamStub]:
    async with grpc.aio.insecure_channel(executor_address) as channel:
        yield mcp_pb2_grpc.McpUpstreamStub(channel)


@pytest.fixture(scope="module")
def bearer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp-bearer") / "token"
    path.write_text("fresh-token")
    return path


@pytest.fixture(scope="module")
def http_mock(bearer_file: Path) -> Iterator[McpHttpMock]:
    with McpHttpMock(bearer_file=bearer_file) as mock:
        yield mock


def http_target(mock: McpHttpMock, *, timeout_s: float = 10.0, bearer: str = "fresh-token",
                server_id: str = "tools") -> mcp_pb2.McpServerTarget:
    return mcp_pb2.McpServerTarget(server_id=server_id, transport="http", url=mock.url,
                                   headers={"Authorization": f"Bearer {bearer}", "X-Tool-Secret": SECRET},
                                   timeout_s=timeout_s)


def stdio_target(server_id: str, *, timeout_s: float = 20.0) -> mcp_pb2.McpServerTarget:
    return mcp_pb2.McpServerTarget(server_id=server_id, transport="stdio", command=stdio_command(),
                                   env={"TOOL_TOKEN": SECRET, "PYTHONPATH": str(Path.cwd())},
                                   timeout_s=timeout_s)


async def call(stub: mcp_pb2_grpc.McpUpstreamStub, target: mcp_pb2.McpServerTarget, method: str, name: str,
               arguments: dict[str, Any] | None = None) -> mcp_pb2.McpCallResult:
    return await stub.Call(mcp_pb2.McpUpstreamCall(
        request_id=f"req-{time.monotonic_ns()}", server=target, method=method, name=name,
        arguments_json=orjson.dumps(arguments) if arguments is not None else b""), timeout=60)


def result(answer: mcp_pb2.McpCallResult) -> dict[str, Any]:
    assert answer.WhichOneof("outcome") == "result_json", answer
    body: dict[str, Any] = orjson.loads(answer.result_json)
    return body


def text_of(answer: mcp_pb2.McpCallResult) -> str:
    body = result(answer)
    assert body["isError"] is False
    return str(body["content"][0]["text"])


@pytest.mark.parametrize(("kind", "expected"), [
    (mcp_pb2.MCP_KIND_TOOLS, ["echo", "sleep", "fail", "headers"]),
    (mcp_pb2.MCP_KIND_RESOURCES, [README_URI]),
    (mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES, ["mock://notes/{note}"]),
    (mcp_pb2.MCP_KIND_PROMPTS, ["greet"]),
])
async def test_lists_each_kind_with_the_servers_own_names(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                          http_mock: McpHttpMock, kind: int,
                                                          expected: list[str]) -> None:
    listed = await upstream.List(mcp_pb2.McpListRequest(request_id="l1", server=http_target(http_mock),
                                                        kind=kind))  # type: ignore[arg-type]
    items = orjson.loads(listed.items_json)
    keys: dict[int, str] = {mcp_pb2.MCP_KIND_RESOURCES: "uri", mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES: "uriTemplate"}
    key = keys.get(kind, "name")
    assert [item[key] for item in items] == expected
    if kind == mcp_pb2.MCP_KIND_TOOLS:   # MCP's own Tool JSON, schema included
        echo = items[0]
        assert echo["description"] == "Answers with the text it was given."
        assert echo["inputSchema"]["properties"]["text"]["type"] == "string"


async def test_each_call_method_answers_mcp_json(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                 http_mock: McpHttpMock) -> None:
    target = http_target(http_mock)
    assert text_of(await call(upstream, target, "tools/call", "echo", {"text": "héllo"})) == "héllo"
    read = result(await call(upstream, target, "resources/read", README_URI))
    assert read["contents"] == [{"uri": README_URI, "mimeType": "text/plain", "text": README_TEXT}]
    templated = result(await call(upstream, target, "resources/read", "mock://notes/abc"))
    assert templated["contents"][0]["text"] == "note abc"
    prompt = result(await call(upstream, target, "prompts/get", "greet", {"name": "Ada"}))
    assert prompt["messages"] == [{"role": "user", "content": {"type": "text", "text": "Say hello to Ada."}}]


async def test_a_tool_error_is_a_result_not_a_failure(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                      http_mock: McpHttpMock) -> None:
    body = result(await call(upstream, http_target(http_mock), "tools/call", "fail", {"message": "disk full"}))
    assert body["isError"] is True
    assert body["content"] == [{"type": "text", "text": "Error executing tool fail: disk full"}]


async def test_the_injected_headers_reach_the_tool_server(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                          http_mock: McpHttpMock) -> None:
    received = json.loads(text_of(await call(upstream, http_target(http_mock), "tools/call", "headers", {})))
    assert received["x-tool-secret"] == SECRET
    assert received["authorization"] == "Bearer fresh-token"


@pytest.mark.parametrize(("method", "name", "code", "message"), [
    ("prompts/get", "no-such-prompt", -32603, "Unknown prompt: no-such-prompt"),
    ("resources/read", "other://nothing", -32602, "Unknown resource: other://nothing"),
])
async def test_a_server_error_answer_passes_its_code_on(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                        http_mock: McpHttpMock, method: str, name: str,
                                                        code: int, message: str) -> None:
    answer = await call(upstream, http_target(http_mock), method, name, {})
    assert answer.WhichOneof("outcome") == "error"
    assert (answer.error.kind, answer.error.code, answer.error.message) == ("rejected", code, message)


async def test_a_slow_tool_is_a_timeout_within_the_servers_timeout(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                                   http_mock: McpHttpMock) -> None:
    started = time.monotonic()
    answer = await call(upstream, http_target(http_mock, timeout_s=1.0), "tools/call", "sleep", {"seconds": 8})
    elapsed = time.monotonic() - started
    assert answer.error.kind == "timeout" and answer.error.code == -32001
    assert answer.error.message == "MCP server tools did not answer within 1 s"
    assert 0.9 < elapsed < 4.0
    # The executor is not stuck: the next call answers.
    assert text_of(await call(upstream, http_target(http_mock), "tools/call", "echo", {"text": "after"})) == "after"


async def test_a_list_that_times_out_is_deadline_exceeded(upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    # A port that accepts and never answers: a listening socket nobody reads.
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        target = mcp_pb2.McpServerTarget(server_id="silent", transport="http", timeout_s=1.0,
                                         url=f"http://127.0.0.1:{silent.getsockname()[1]}/mcp")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await upstream.List(mcp_pb2.McpListRequest(request_id="l2", server=target,
                                                       kind=mcp_pb2.MCP_KIND_TOOLS), timeout=30)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.details() == "MCP server silent did not answer within 1 s"


async def test_a_dead_server_is_an_upstream_error_at_once(upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    target = mcp_pb2.McpServerTarget(server_id="gone", transport="http", timeout_s=20.0,
                                     url=f"http://127.0.0.1:{free_port()}/mcp")
    started = time.monotonic()
    answer = await call(upstream, target, "tools/call", "echo", {"text": "x"})
    assert answer.error.kind == "upstream_error" and answer.error.code == -32050
    assert answer.error.message == "MCP server gone is unreachable (ConnectError)"
    assert time.monotonic() - started < 5.0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await upstream.List(mcp_pb2.McpListRequest(request_id="l3", server=target, kind=mcp_pb2.MCP_KIND_TOOLS))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == "MCP server gone is unreachable (ConnectError)"


async def test_a_server_killed_mid_call_is_an_upstream_error_not_a_hang(
        upstream: mcp_pb2_grpc.McpUpstreamStub, bearer_file: Path) -> None:
    with McpHttpMock(bearer_file=bearer_file) as doomed:
        target = http_target(doomed, timeout_s=30.0, server_id="doomed")
        pending = asyncio.create_task(call(upstream, target, "tools/call", "sleep", {"seconds": 20}))
        await asyncio.sleep(1.5)
        started = time.monotonic()
        await asyncio.to_thread(doomed.kill)
        answer = await pending
    assert answer.error.kind == "upstream_error" and answer.error.code == -32050
    assert answer.error.message.startswith("MCP server doomed ")
    assert time.monotonic() - started < 5.0


async def test_a_401_is_unauthorized_and_the_fresh_token_then_works(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                                     http_mock: McpHttpMock) -> None:
    stale = http_target(http_mock, bearer="expired-token")
    answer = await call(upstream, stale, "tools/call", "echo", {"text": "x"})
    assert answer.error.kind == "unauthorized"
    assert answer.error.message == "MCP server tools refused the gateway's credentials (HTTP 401)"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await upstream.List(mcp_pb2.McpListRequest(request_id="l4", server=stale, kind=mcp_pb2.MCP_KIND_TOOLS))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # What the router does next: the refreshed token, once.
    assert text_of(await call(upstream, http_target(http_mock), "tools/call", "echo", {"text": "x"})) == "x"


async def test_a_stdio_server_is_kept_gets_its_env_and_restarts_when_it_dies(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    target = stdio_target("local-stdio")
    first_pid = int(text_of(await call(upstream, target, "tools/call", "pid", {})))
    assert text_of(await call(upstream, target, "tools/call", "echo", {"text": "over stdio"})) == "over stdio"
    assert text_of(await call(upstream, target, "tools/call", "env", {"name": "TOOL_TOKEN"})) == SECRET
    # Concurrent calls share the one kept process.
    pids = await asyncio.gather(*(call(upstream, target, "tools/call", "pid", {}) for _ in range(5)))
    assert {int(text_of(answer)) for answer in pids} == {first_pid}

    died = await call(upstream, target, "tools/call", "exit_now", {})
    assert died.error.kind == "upstream_error"
    assert died.error.message == "MCP server local-stdio closed the connection"
    second_pid = int(text_of(await call(upstream, target, "tools/call", "pid", {})))
    assert second_pid != first_pid

    # A process that died while idle is noticed before the next call (which just works).
    os.kill(second_pid, 9)
    await asyncio.sleep(0.5)
    third_pid = int(text_of(await call(upstream, target, "tools/call", "pid", {})))
    assert third_pid not in (first_pid, second_pid)
    listed = await upstream.List(mcp_pb2.McpListRequest(request_id="l5", server=target, kind=mcp_pb2.MCP_KIND_TOOLS))
    assert [tool["name"] for tool in orjson.loads(listed.items_json)] == ["echo", "sleep", "env", "pid", "exit_now"]


async def test_a_stdio_timeout_answers_in_time_and_keeps_the_process_for_the_other_calls(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    patient = stdio_target("slow-stdio", timeout_s=20.0)
    pid = int(text_of(await call(upstream, patient, "tools/call", "pid", {})))
    hasty = stdio_target("slow-stdio", timeout_s=1.0)
    started = time.monotonic()
    slow, other = await asyncio.gather(call(upstream, hasty, "tools/call", "sleep", {"seconds": 6}),
                                       call(upstream, patient, "tools/call", "sleep", {"seconds": 2}))
    assert (slow.error.kind, slow.error.code) == ("timeout", -32001)
    assert text_of(other) == "slept"   # the call running beside it on the same process was not cut
    assert time.monotonic() - started < 5.0
    assert int(text_of(await call(upstream, patient, "tools/call", "pid", {}))) == pid


async def test_a_stdio_command_that_cannot_start_is_an_upstream_error(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    target = mcp_pb2.McpServerTarget(server_id="broken-stdio", transport="stdio", timeout_s=10.0,
                                     command=[sys.executable, "-c", "import sys; sys.exit(3)"])
    answer = await call(upstream, target, "tools/call", "echo", {"text": "x"})
    assert answer.error.kind == "upstream_error"
    assert answer.error.message.startswith("MCP server broken-stdio ")


async def test_a_cloud_metadata_address_is_refused_without_a_request(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    target = mcp_pb2.McpServerTarget(server_id="metadata", transport="http", timeout_s=5.0,
                                     url="http://metadata.google.internal/mcp")
    answer = await call(upstream, target, "tools/call", "echo", {"text": "x"})
    assert (answer.error.kind, answer.error.code) == ("upstream_error", -32050)
    assert answer.error.message == ("MCP server metadata: its address is refused "
                                    "(metadata.google.internal is a cloud metadata service)")


async def test_an_oauth_server_refuses_a_revoked_token_as_unauthorized_and_takes_a_new_one(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    """The executor's half of the OAuth refresh: the tool server's 401 comes back as kind
    `unauthorized` (the router then refreshes the connection's token once and calls again)."""
    with OAuthServer() as oauth, McpHttpMock(introspect_url=f"{oauth.url}/_oauth/introspect") as protected:
        def target(token: str) -> mcp_pb2.McpServerTarget:
            return mcp_pb2.McpServerTarget(server_id="oauth-tools", transport="http", url=protected.url,
                                           headers={"Authorization": f"Bearer {token}"}, timeout_s=10.0)

        first = oauth.state.issue()["access_token"]
        assert text_of(await call(upstream, target(first), "tools/call", "echo", {"text": "a"})) == "a"
        await asyncio.to_thread(httpx.post, f"{oauth.url}/_oauth/revoke")
        refused = await call(upstream, target(first), "tools/call", "echo", {"text": "b"})
        assert (refused.error.kind, refused.error.code) == ("unauthorized", -32050)
        assert refused.error.message == "MCP server oauth-tools refused the gateway's credentials (HTTP 401)"
        second = oauth.state.issue()["access_token"]
        received = json.loads(text_of(await call(upstream, target(second), "tools/call", "headers", {})))
        assert received["authorization"] == f"Bearer {second}"


async def test_many_concurrent_calls_each_get_their_own_answer(upstream: mcp_pb2_grpc.McpUpstreamStub,
                                                              http_mock: McpHttpMock) -> None:
    texts = [f"call {i}" for i in range(40)]
    answers = await asyncio.gather(*(call(upstream, http_target(http_mock), "tools/call", "echo", {"text": text})
                                     for text in texts))
    assert [text_of(answer) for answer in answers] == texts


async def test_a_stdio_server_whose_command_or_env_changed_is_replaced(
        upstream: mcp_pb2_grpc.McpUpstreamStub) -> None:
    before = stdio_target("reconfigured")
    old_pid = int(text_of(await call(upstream, before, "tools/call", "pid", {})))
    after = stdio_target("reconfigured")
    after.env["TOOL_TOKEN"] = "rotated-secret"
    assert text_of(await call(upstream, after, "tools/call", "env", {"name": "TOOL_TOKEN"})) == "rotated-secret"
    assert int(text_of(await call(upstream, after, "tools/call", "pid", {}))) != old_pid
    assert not pid_alive(old_pid)   # the old one was ended, not left behind


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_an_executor_that_stops_ends_its_stdio_servers(tmp_path: Path) -> None:
    async def start_one(address: str) -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = mcp_pb2_grpc.McpUpstreamStub(channel)
            return int(text_of(await call(stub, stdio_target("short-lived"), "tools/call", "pid", {})))

    with running_executor(tmp_path / "logs") as address:
        pid = asyncio.run(start_one(address))
        assert pid_alive(pid)
    wait_for(lambda: not pid_alive(pid), timeout=10)


# --- SSRF at connect time: a public-looking name that this machine resolves to 127.0.0.1 passes
# the check by name; the executor resolves it itself and checks the address it connects to.

BY_NAME_REFUSED = ("MCP server by-name: its address is refused "
                   "(127.0.0.1 is a loopback address (set OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS=true to allow))")


@pytest.fixture(scope="module")
def name_resolving_inside() -> Iterator[str]:
    with name_resolving_to(public_looking_name()) as name:
        yield name


@pytest.fixture(scope="module")
def relayed_mock(name_resolving_inside: str, bearer_file: Path) -> Iterator[CountingRelay]:
    """An MCP mock that answers to the name, behind a relay that counts the TCP connections."""
    with (McpHttpMock(bearer_file=bearer_file, allowed_hosts=(name_resolving_inside,)) as mock,
          CountingRelay(mock.port) as relay):
        yield relay


@pytest.fixture(scope="module")
def strict_executor_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An MCP executor that does not allow private addresses (the normal test setting does)."""
    with running_executor(tmp_path_factory.mktemp("mcp-executor-strict") / "logs",
                          extra_env={"OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "false"}) as address:
        yield address


@pytest.fixture
async def strict_upstream(strict_executor_address: str) -> AsyncIterator[mcp_pb2_grpc.McpUpstreamStub]:
    async with grpc.aio.insecure_channel(strict_executor_address) as channel:
        yield mcp_pb2_grpc.McpUpstreamStub(channel)


def by_name(name: str, relay: CountingRelay) -> mcp_pb2.McpServerTarget:
    return mcp_pb2.McpServerTarget(server_id="by-name", transport="http", url=f"http://{name}:{relay.port}/mcp",
                                   headers={"Authorization": "Bearer fresh-token"}, timeout_s=10.0)


@pytest.mark.parametrize(("method", "name", "arguments"), [
    ("tools/call", "echo", {"text": "x"}),
    ("resources/read", README_URI, None),
    ("prompts/get", "greet", {"name": "Ada"}),
])
async def test_a_call_to_a_name_that_resolves_inside_is_refused_before_connecting(
        strict_upstream: mcp_pb2_grpc.McpUpstreamStub, relayed_mock: CountingRelay, name_resolving_inside: str,
        method: str, name: str, arguments: dict[str, Any] | None) -> None:
    connections = relayed_mock.connections
    answer = await call(strict_upstream, by_name(name_resolving_inside, relayed_mock), method, name, arguments)
    assert answer.WhichOneof("outcome") == "error"
    assert (answer.error.kind, answer.error.code, answer.error.message) == ("upstream_error", -32050,
                                                                           BY_NAME_REFUSED)
    assert relayed_mock.connections == connections  # not even a TCP connection


@pytest.mark.parametrize("kind", [mcp_pb2.MCP_KIND_TOOLS, mcp_pb2.MCP_KIND_RESOURCES,
                                  mcp_pb2.MCP_KIND_RESOURCE_TEMPLATES, mcp_pb2.MCP_KIND_PROMPTS])
async def test_listing_a_name_that_resolves_inside_is_refused_before_connecting(
        strict_upstream: mcp_pb2_grpc.McpUpstreamStub, relayed_mock: CountingRelay, name_resolving_inside: str,
        kind: int) -> None:
    connections = relayed_mock.connections
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await strict_upstream.List(mcp_pb2.McpListRequest(request_id="l-ssrf", server=by_name(
            name_resolving_inside, relayed_mock), kind=kind), timeout=30)  # type: ignore[arg-type]
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == BY_NAME_REFUSED
    assert relayed_mock.connections == connections


async def test_the_same_name_is_served_where_private_addresses_are_allowed(
        upstream: mcp_pb2_grpc.McpUpstreamStub, relayed_mock: CountingRelay, name_resolving_inside: str) -> None:
    connections = relayed_mock.connections
    target = by_name(name_resolving_inside, relayed_mock)
    assert text_of(await call(upstream, target, "tools/call", "echo", {"text": "by name"})) == "by name"
    listed = await upstream.List(mcp_pb2.McpListRequest(request_id="l-name", server=target,
                                                        kind=mcp_pb2.MCP_KIND_PROMPTS))
    assert [prompt["name"] for prompt in orjson.loads(listed.items_json)] == ["greet"]
    assert relayed_mock.connections > connections  # the calls went through the relay to the mock
