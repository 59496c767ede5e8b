"""Streams are relayed, never buffered: every client format by every upstream family, passthrough
and translated.

The upstream is the mock's `mock-paced` scenario: PIECES text pieces, one every 300 ms, each
naming its index (`[<token>#<i>]`), with the mock noting when it sent each piece
(`MockServer.sent_times`). The client is the format's official SDK, timestamping every text
delta as the SDK yields it. A relay that buffers anywhere (the edge's encoder, the router, the
executor's decoder, a ChunkBatch waiting for more) either merges pieces into fewer deltas or
hands piece i to the SDK only after the mock sent piece i+1: both are failures here. Both clocks
are `time.time()` on this machine (the mock runs in the test process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anthropic
import ollama
import openai
import pytest
from google import genai
from google.genai import types as gt

from tests.e2e.format_clients import TIMEOUT_S
from tests.mocks.common import PACED_PIECE
from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")

PIECES = 4
PROMPT = "count for me"
# provider id in the e2e config (tests/e2e/conftest.py) → its upstream family
UPSTREAMS = {"myopenai": "openai", "myresponses": "openai-responses", "myanthropic": "anthropic",
             "mygemini": "gemini", "myollama": "ollama"}


@dataclass(frozen=True)
class Delta:
    received: float  # time.time() when the SDK yielded it
    text: str


def _openai_chat(url: str, key: str, model: str) -> Iterator[str]:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)
    for chunk in sdk.chat.completions.create(model=model, stream=True,
                                             messages=[{"role": "user", "content": PROMPT}]):
        for choice in chunk.choices:
            if choice.delta.content:
                yield choice.delta.content


def _openai_responses(url: str, key: str, model: str) -> Iterator[str]:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)
    for event in sdk.responses.create(model=model, input=PROMPT, stream=True):
        if event.type == "response.output_text.delta" and event.delta:
            yield event.delta


def _anthropic(url: str, key: str, model: str) -> Iterator[str]:
    sdk = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=TIMEOUT_S)
    for event in sdk.messages.create(model=model, max_tokens=256, stream=True,
                                     messages=[{"role": "user", "content": PROMPT}]):
        if event.type == "content_block_delta" and event.delta.type == "text_delta" and event.delta.text:
            yield event.delta.text


def _gemini(url: str, key: str, model: str) -> Iterator[str]:
    sdk = genai.Client(api_key=key, http_options=gt.HttpOptions(base_url=url, api_version="v1beta",
                                                                timeout=int(TIMEOUT_S * 1000)))
    for frame in sdk.models.generate_content_stream(model=model, contents=PROMPT):
        for candidate in frame.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.text and not part.thought:
                    yield part.text


def _ollama(url: str, key: str, model: str) -> Iterator[str]:
    sdk = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S)
    for part in sdk.chat(model=model, messages=[{"role": "user", "content": PROMPT}], stream=True):
        if part.message.content:
            yield part.message.content


CLIENTS: dict[str, Callable[[str, str, str], Iterator[str]]] = {
    "openai_chat": _openai_chat, "openai_responses": _openai_responses, "anthropic": _anthropic,
    "gemini": _gemini, "ollama": _ollama}


def _deltas(stream: Iterator[str]) -> list[Delta]:
    return [Delta(time.time(), text) for text in stream]


@pytest.mark.parametrize("provider", list(UPSTREAMS))
@pytest.mark.parametrize("client_name", list(CLIENTS))
def test_each_upstream_chunk_reaches_the_sdk_before_the_next_is_sent(
        gateway: Gateway, mock_upstream: MockServer, client_name: str, provider: str) -> None:
    assert_relayed(gateway, mock_upstream, client_name, provider)


def assert_relayed(gateway: Gateway, mock_upstream: MockServer, client_name: str, provider: str) -> None:
    """One paced stream through `gateway`: every piece reached the SDK before the next was sent."""
    deltas = _deltas(CLIENTS[client_name](gateway.url, gateway.api_key, f"{provider}/mock-paced-{PIECES}"))
    pieces = [PACED_PIECE.fullmatch(delta.text) for delta in deltas]
    # One delta per upstream chunk, each holding exactly that chunk's piece, in order.
    assert all(pieces) and [int(p.group(2)) for p in pieces if p] == list(range(PIECES)), \
        [d.text for d in deltas]
    tokens = {p.group(1) for p in pieces if p}
    assert len(tokens) == 1
    sent = mock_upstream.sent_times(tokens.pop())
    assert sorted(sent) == list(range(PIECES))
    late = [(i, round(deltas[i].received - sent[i + 1], 3)) for i in range(PIECES - 1)
            if deltas[i].received >= sent[i + 1]]
    # (piece, seconds after the mock sent the next one): a piece the relay held back.
    assert late == [], f"{client_name} ← {UPSTREAMS[provider]}: pieces arrived late {late}"
