"""The exact cache, the semantic cache and idempotency replay for every client format, through the
running stack with the official SDKs: each format against an upstream of its own family (the
body passes through and the answer comes back in the caller's format) and against another family
(translated), whole and streamed. The second identical call is answered without an upstream
call, with the same content, and its usage row says it was a cache hit. A reused idempotency key
(or X-Request-Id) with a different body, model or stream flag is a 409 in the caller's format."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.format_clients import CLIENTS, Ask, FormatClient
from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")

# client format → (a provider of its own family: passthrough, one of another family: translated)
FAMILIES = {"openai_chat": ("myopenai", "myanthropic"), "openai_responses": ("myresponses", "myopenai"),
            "anthropic": ("myanthropic", "myopenai"), "gemini": ("mygemini", "myopenai"),
            "ollama": ("myollama", "myopenai")}
# how a request asks for each mechanism
ASK = {"exact": lambda marker: {"cache-control": "max-age=60"},
       "idempotency": lambda marker: {"idempotency-key": f"idem-{marker}"},
       "semantic": lambda marker: {"x-omniroute-semantic-cache": "true"}}

client_names = pytest.mark.parametrize("client_name", list(FAMILIES))
routes = pytest.mark.parametrize("route", ["passthrough", "translated"])
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def _client(gateway: Gateway, name: str, headers: dict[str, str]) -> FormatClient:
    return CLIENTS[name](gateway.url, gateway.api_key, headers)


def _model(client_name: str, route: str, marker: str) -> str:
    """A model of this cell only (`<provider>/<marker>/mock-text`; the mock reads the last
    segment): its upstream calls and usage rows are found by the marker."""
    own, other = FAMILIES[client_name]
    return f"{own if route == 'passthrough' else other}/{marker}/mock-text"


def _upstream_calls(mock: MockServer, marker: str) -> int:
    return sum(1 for r in mock.requests() if marker in r.path or marker in r.raw_body.decode(errors="replace"))


def _cache_hits(gateway: Gateway, model: str, count: int) -> list[bool]:
    """The usage rows of a model's requests (in order), once all `count` are there."""
    def rows() -> list[Any] | None:
        found = gateway.rows("SELECT cache_hit FROM usage WHERE requested_model = %s ORDER BY started_at",
                             (model,))
        return found if len(found) == count else None
    return [bool(hit) for (hit,) in wait_for(rows)]


@client_names
@routes
@streaming
@pytest.mark.parametrize("mechanism", ["exact", "idempotency", "semantic"])
def test_a_repeat_is_answered_without_the_upstream(gateway: Gateway, mock_upstream: MockServer,
                                                   client_name: str, route: str, stream: bool,
                                                   mechanism: str) -> None:
    marker = uuid.uuid4().hex
    client = _client(gateway, client_name, ASK[mechanism](marker))
    model = _model(client_name, route, marker)
    first = client.chat(model, [Ask(f"hello there {marker}")], stream)
    assert first.text.startswith("Hello from mock")
    second = client.chat(model, [Ask(f"hello there {marker}")], stream)
    assert second == first
    assert _upstream_calls(mock_upstream, marker) == 1
    assert _cache_hits(gateway, model, 2) == [False, True]
