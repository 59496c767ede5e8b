"""Every client format by every upstream family, streaming and not, through the running stack.

Clients are the official SDKs (openai chat and responses, anthropic, google-genai, ollama);
upstreams are the mock providers, one configured provider per family (tests/e2e/conftest.py).
Each SDK gets a small adapter (tests/e2e/format_clients.py) that speaks its own API and reports
what it understood in one neutral shape, so that every cell of the matrix asserts the same thing:
the SDK parsed the answer and found the right text, tool calls, reasoning, usage and stop reason,
and errors arrive in the client's own shape (status kept; mid-stream: a clean error, no hang)."""

from __future__ import annotations

import pytest

from tests.e2e.format_clients import CLIENTS, Ask, FormatClient, StreamFailed, ToolRound, Turn
from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")

# provider id in the e2e config → the mock family that answers (named in its scripted text)
UPSTREAMS = {"myopenai": "openai", "myresponses": "openai-responses", "myanthropic": "anthropic",
             "mygemini": "gemini", "myollama": "ollama"}
# Families whose wire format carries tool-call ids (Gemini's are optional, Ollama has none).
ID_FAMILIES = {"openai", "openai-responses", "anthropic"}



def _expects_ids(client: FormatClient, provider: str) -> bool:
    """Whether the client should see tool-call ids: Gemini's are optional and its API rarely
    sends them, so a Gemini client talking to a Gemini upstream (passthrough) may get none."""
    return client.has_ids and not (isinstance(client, CLIENTS["gemini"]) and provider == "mygemini")


def _own_model(provider: str, scenario: str, client_name: str, stream: bool) -> str:
    """A model name of this cell only (`<provider>/<cell>/mock-…`; the mock reads the last
    segment): the router cools a connection down per model after a 429 or 5xx, and a cell must
    not see the cooldown its neighbour caused."""
    return f"{provider}/{client_name}-{'stream' if stream else 'whole'}/{scenario}"


client_names = pytest.mark.parametrize("client_name", list(CLIENTS))
upstreams = pytest.mark.parametrize("provider", list(UPSTREAMS))
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def _client(gateway: Gateway, name: str) -> FormatClient:
    return CLIENTS[name](gateway.url, gateway.api_key)


@client_names
@upstreams
@streaming
def test_text(gateway: Gateway, client_name: str, provider: str, stream: bool) -> None:
    result = _client(gateway, client_name).chat(f"{provider}/mock-text", [Ask("hello there")], stream)
    assert result.text == f"Hello from mock {UPSTREAMS[provider]}! This is a scripted reply."
    assert result.stop == "stop"
    assert result.calls == []
    assert result.output_tokens == 9 and result.input_tokens > 0


@client_names
@upstreams
@streaming
def test_tool_call_then_its_result(gateway: Gateway, mock_upstream: MockServer, client_name: str,
                                   provider: str, stream: bool) -> None:
    client = _client(gateway, client_name)
    first = client.chat(f"{provider}/mock-tool", [Ask("weather in Paris?")], stream, tools=True)
    assert [(c.name, c.args) for c in first.calls] == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    assert first.stop == "tool_calls" and first.output_tokens > 0
    if _expects_ids(client, provider):
        assert first.calls[0].id

    # Second turn: the tool's result goes back with the id the client was given.
    turns: list[Turn] = [Ask("weather in Paris?"), ToolRound(first.calls, ["sunny, 21C"])]
    second = client.chat(f"{provider}/mock-text", turns, stream, tools=True)
    family = UPSTREAMS[provider]
    assert second.text == f"Hello from mock {family}! This is a scripted reply."
    sent = mock_upstream.last(family=family)
    assert "sunny, 21C" in sent.raw_body.decode()
    call_ids, result_ids = _upstream_tool_ids(family, sent.body)
    if family in ID_FAMILIES:
        assert call_ids == result_ids and len(call_ids) == 1  # the pair still matches upstream
        if _expects_ids(client, provider):
            assert call_ids == {first.calls[0].id}  # … with the very id the client saw


@client_names
@upstreams
@streaming
def test_parallel_tool_calls(gateway: Gateway, client_name: str, provider: str, stream: bool) -> None:
    client = _client(gateway, client_name)
    result = client.chat(f"{provider}/mock-parallel-tools", [Ask("Paris and Tokyo?")], stream, tools=True)
    assert [(c.name, c.args) for c in result.calls] == [("get_weather", {"city": "Paris"}),
                                                         ("get_time", {"city": "Tokyo"})]
    assert result.stop == "tool_calls"
    if _expects_ids(client, provider):
        assert len({c.id for c in result.calls}) == 2 and all(c.id for c in result.calls)


@client_names
@upstreams
@streaming
def test_reasoning(gateway: Gateway, client_name: str, provider: str, stream: bool) -> None:
    # mock-reasoning-content: the OpenAI mock sends reasoning text only in this variant.
    result = _client(gateway, client_name).chat(f"{provider}/mock-reasoning-content", [Ask("hi")],
                                                stream, reasoning=True)
    assert result.reasoning.startswith("Let me think.")
    assert result.text == f"Hello from mock {UPSTREAMS[provider]} after thinking!"
    assert result.stop == "stop" and result.output_tokens > 9


@client_names
@upstreams
@streaming
def test_error_before_first_byte_keeps_status(gateway: Gateway, client_name: str, provider: str,
                                              stream: bool) -> None:
    client = _client(gateway, client_name)
    with pytest.raises(Exception) as caught:
        client.chat(_own_model(provider, "mock-429", client_name, stream), [Ask("hi")], stream)
    assert client.status_of(caught.value) == 429


@client_names
@upstreams
@streaming
def test_error_mid_stream_is_a_clean_error(gateway: Gateway, client_name: str, provider: str,
                                           stream: bool) -> None:
    client = _client(gateway, client_name)
    with pytest.raises(Exception) as caught:
        client.chat(_own_model(provider, "mock-error-mid", client_name, stream), [Ask("hi")], stream)
    if stream:  # the answer had started: the SDK read the format's error event
        assert isinstance(caught.value, StreamFailed) or client.status_of(caught.value) is not None
    else:  # without streaming the upstream fails before answering
        status = client.status_of(caught.value)
        assert status is not None and status >= 500
    # The provider is fine again for the next caller; this success also resets the router's
    # count of consecutive failures, so that this cell does not open the connection's breaker.
    healthy = client.chat(f"{provider}/mock-text", [Ask("still there?")], stream)
    assert healthy.text.startswith("Hello from mock")


def _upstream_tool_ids(family: str, body: dict) -> tuple[set[str], set[str]]:
    """(tool-call ids, tool-result ids) in a request as the upstream received it."""
    calls: set[str] = set()
    results: set[str] = set()
    if family == "openai":
        for message in body["messages"]:
            calls |= {call["id"] for call in message.get("tool_calls") or []}
            if message["role"] == "tool":
                results.add(message["tool_call_id"])
    elif family == "openai-responses":
        for item in body["input"]:
            if item.get("type") == "function_call":
                calls.add(item["call_id"])
            elif item.get("type") == "function_call_output":
                results.add(item["call_id"])
    elif family == "anthropic":
        for message in body["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block["type"] == "tool_use":
                    calls.add(block["id"])
                elif block["type"] == "tool_result":
                    results.add(block["tool_use_id"])
    return calls, results
