"""Bad input on every public route: schemathesis from the edge's own OpenAPI document, hypothesis
for the bodies the edge parses itself, and hand-written abuse (oversized, nested, invalid UTF-8,
huge numbers, wrong types, unknown fields, slow and vanishing clients, header injection).

The rule everywhere: a 4xx that says what is wrong (or a normal answer), never a 500, never a
hang, never a traceback in a body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from tests.mocks.faults import FaultServer
from tests.reliability.checks import assert_no_leak, chat
from tests.reliability.conftest import API_KEY, BODY_TIMEOUT_S
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("reliability")

AUTH = {"authorization": f"Bearer {API_KEY}"}
LIMIT = 1024 * 1024   # OMNIROUTE_MAX_BODY_BYTES of the stack (conftest)
CHAT_ROUTES = ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens",
               "/api/chat", "/v1beta/models/mock-text:generateContent", "/v1/embeddings",
               "/v1/images/generations"]


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        yield http


def assert_refused_cleanly(response: httpx.Response, *allowed: int) -> None:
    """Bad input gets a 4xx (or, when it was acceptable after all, an answer); never any 5xx:
    the good upstream answers, so a 502/503/504 here would hide a gateway bug as well."""
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if allowed:
        assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert_no_leak(response.content)


# --------------------------------------------------------------------------- schemathesis


def edge_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the edge's OpenAPI document, built offline for
    collection; the test itself fuzzes the document the running edge serves."""
    from omniroute.settings import Settings
    from omniroute_edge.app import create_app

    document = create_app(Settings()).openapi()
    return [(method.upper(), path) for path, methods in document["paths"].items() for method in methods]


@pytest.fixture(scope="module")
def edge_schema(gateway: Gateway) -> schemathesis.BaseSchema:
    """The edge's OpenAPI document, as the running edge serves it (FastAPI's /openapi.json)."""
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


# schemathesis' own pytest plugin does not run under pytest 9 (it reads a removed attribute), so
# each operation's case strategy is driven by hypothesis directly.
@pytest.mark.parametrize(("method", "path"), edge_operations())
@pytest.mark.parametrize("generation", ["positive", "negative"])
def test_schemathesis_every_public_route(edge_schema: schemathesis.BaseSchema, gateway: Gateway,
                                         method: str, path: str, generation: str) -> None:
    operation = edge_schema[path][method]
    mode = schemathesis.GenerationMode(generation)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:
        for headers in (AUTH, {}):   # with a key (reaches the parsers) and without (401, not 500)
            response = case.call(base_url=gateway.url, headers=headers, timeout=20)
            # No 5xx at all: generated model names match no provider, so no upstream is reached.
            assert response.status_code < 500, \
                (case.method, case.formatted_path, response.status_code, response.content[:300])
            assert_no_leak(response.content)
            if not headers and path.startswith(("/v1", "/api/chat", "/api/tags")):
                assert response.status_code in (401, 404, 405), (case.formatted_path, response.status_code)

    try:
        fuzz()
    except Unsatisfiable:
        assert generation == "negative"   # nothing to get wrong: no parameters, no body schema


# --------------------------------------------------------------------------- hypothesis bodies

_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
            | st.text(max_size=20))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
# Bodies close to real ones, with any field of any type: what reaches the translators.
_bodies = st.fixed_dictionaries({}, optional={
    "model": _json | st.just("good/mock-text"), "stream": _json, "max_tokens": _json,
    "messages": _json | st.lists(st.fixed_dictionaries({}, optional={"role": _json, "content": _json}),
                                 max_size=3),
    "contents": _json, "input": _json, "prompt": _json, "tools": _json, "system": _json,
    "temperature": _json, "stream_options": _json, "n": _json})


@given(route=st.sampled_from(CHAT_ROUTES), body=_bodies | _json)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_hypothesis_bodies_never_break_the_edge(client: httpx.Client, route: str, body: object) -> None:
    response = client.post(route, content=orjson.dumps(body), headers=AUTH)
    assert_refused_cleanly(response)


@given(raw=st.binary(max_size=200))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_hypothesis_raw_bytes(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/v1/chat/completions", content=raw, headers=AUTH)
    assert_refused_cleanly(response)


# --------------------------------------------------------------------------- named cases


@pytest.mark.parametrize("route", CHAT_ROUTES)
def test_oversized_body_is_413(client: httpx.Client, route: str) -> None:
    big = b'{"model":"good/mock-text","pad":"' + b"x" * (LIMIT + 10) + b'"}'
    assert_refused_cleanly(client.post(route, content=big, headers=AUTH), 413)

    def chunks() -> Iterator[bytes]:   # no content-length: the limit must hold while reading
        yield big[:1000]
        yield big[1000:]
    assert_refused_cleanly(client.post(route, content=chunks(), headers=AUTH), 413)


BAD_BODIES = {
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "nested_objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "invalid_utf8": b'{"model":"good/mock-text","messages":[{"role":"user","content":"\xff\xfe\xc3"}]}',
    "lone_surrogate": b'{"model":"good/mock-text","messages":[{"role":"user","content":"\\ud800"}]}',
    "huge_int": b'{"model":"good/mock-text","max_tokens":' + b"9" * 5000 + b',"messages":[]}',
    "huge_float": b'{"model":"good/mock-text","temperature":1e999,"messages":[]}',
    "nan": b'{"model":"good/mock-text","temperature":NaN,"messages":[]}',
    "wrong_types": b'{"model":5,"messages":"hi","stream":"yes","max_tokens":"x"}',
    "messages_wrong_items": b'{"model":"good/mock-text","messages":[1,null,"x",[]]}',
    "content_wrong": b'{"model":"good/mock-text","messages":[{"role":"user","content":{"a":1}}]}',
    "empty": b"",
    "array": b"[]",
    "null": b"null",
    "bom": b'\xef\xbb\xbf{"model":"good/mock-text","messages":[]}',
    "trailing_garbage": b'{"model":"good/mock-text","messages":[]} xyz',
}


@pytest.mark.parametrize("route", CHAT_ROUTES)
@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_malformed_bodies_get_a_4xx(client: httpx.Client, route: str, name: str) -> None:
    response = client.post(route, content=BAD_BODIES[name], headers=AUTH)
    assert_refused_cleanly(response)
    assert response.status_code != 200 or name in ("lone_surrogate", "content_wrong"), \
        (name, response.content[:300])


def test_unknown_fields_are_accepted(client: httpx.Client) -> None:
    body = {"model": "good/mock-text", "messages": [{"role": "user", "content": "hi", "x_extra": 1}],
            "x_unknown": {"deep": [1, 2]}, "another": None}
    response = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200, response.content[:300]


def test_slow_client_upload_is_served_and_blocks_no_one(client: httpx.Client, gateway: Gateway) -> None:
    """A body trickled over ~2 s still gets its answer, and other callers are served meanwhile."""
    body = orjson.dumps({"model": "good/mock-text", "messages": [{"role": "user", "content": "slow"}]})

    def trickle() -> Iterator[bytes]:
        for index in range(0, len(body), 8):
            time.sleep(2.0 / (len(body) / 8))
            yield body[index:index + 8]

    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(
        httpx.post(f"{gateway.url}/v1/chat/completions", content=trickle(), headers=AUTH, timeout=20)))
    thread.start()
    others = [chat(client, API_KEY, "good/mock-text") for _ in range(3)]
    thread.join(20)
    assert [o.status for o in others] == [200, 200, 200]
    assert max(o.elapsed_s for o in others) < 2.0
    assert result and result[0].status_code == 200, result


def test_a_body_that_never_finishes_arriving_gets_408(gateway: Gateway) -> None:
    """A slow-loris client: the body trickles for longer than OMNIROUTE_BODY_TIMEOUT_S."""
    body = orjson.dumps({"model": "good/mock-text", "messages": [{"role": "user", "content": "x" * 200}]})

    def trickle() -> Iterator[bytes]:
        for index in range(0, len(body), 4):
            time.sleep((BODY_TIMEOUT_S + 2) / (len(body) / 4))
            yield body[index:index + 4]

    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=trickle(), headers=AUTH, timeout=30)
    assert response.status_code == 408 and "did not arrive" in response.json()["error"]["message"]
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3


def test_client_disconnect_cancels_upstream_and_is_recorded(gateway: Gateway,
                                                             fault_upstream: FaultServer) -> None:
    """A caller that goes away mid-stream: the upstream connection is closed at once (well before
    the 2 s idle timeout would), and the request still gets its usage row, with status 499."""
    before = len(fault_upstream.released)
    with httpx.Client(base_url=gateway.url, timeout=10) as http, http.stream(
            "POST", "/v1/chat/completions", headers=AUTH,
            json={"model": "p-fault-stall/fault-stall", "stream": True,
                  "messages": [{"role": "user", "content": "bye"}]}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-omniroute-request-id"]
        next(response.iter_raw())   # the first chunk arrived: the upstream call is running
        gone_at = time.monotonic()
    deadline = time.monotonic() + 5
    while len(fault_upstream.released) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fault_upstream.released) > before, "the upstream connection was never closed"
    assert fault_upstream.released[-1][1] - gone_at < 1.0
    row = gateway.usage_row(request_id)
    assert row["status"] == 499, row


@pytest.mark.parametrize("header", [b"x-request-id", b"idempotency-key", b"x-mock-scenario"])
def test_header_injection_is_refused_or_inert(gateway: Gateway, header: bytes) -> None:
    """A bare CR or LF (or NUL) in a header value never becomes a header of its own: either the
    server refuses the request (400) or the value is not echoed with its control characters."""
    port = int(gateway.url.rsplit(":", 1)[1])
    body = orjson.dumps({"model": "good/mock-text", "messages": [{"role": "user", "content": "h"}]})
    for value in (b"abc\rset-cookie: injected=1", b"abc\nset-cookie: injected=1", b"abc\x00def"):
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer "
                   + API_KEY.encode() + b"\r\ncontent-type: application/json\r\n" + header + b": " + value
                   + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                   + body)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 "), answer[:200]
        assert int(head[9:12]) < 500, answer[:300]
        assert b"\r\nset-cookie: injected" not in head, head
        assert b"\x00" not in head
        assert_no_leak(answer)
