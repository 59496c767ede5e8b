"""The whole stack on the internal transports other than the default (OMNIROUTE_HOP_TRANSPORT; issue
20): `unary`, one gRPC call per request (the RPCs kept for callers that want them), and `stream`,
the session messages on long-lived gRPC bidi streams instead of plain TCP (`tcp`, the default the
rest of the suite runs on). On each: streams relayed piece by piece for every client format and
upstream family, whole answers and embeddings answered and recorded — the same outcomes."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.conftest import API_KEY, gateway_config
from tests.e2e.test_stream_relay import CLIENTS, UPSTREAMS, assert_relayed
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("other-hop-transports")


@pytest.fixture(scope="module", params=["unary", "stream"])
def gateway(request: pytest.FixtureRequest, mock_upstream: MockServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp(request.param), gateway_config(mock_upstream), api_key=API_KEY,
                         extra_env={"OMNIROUTE_HOP_TRANSPORT": request.param}) as running:
        yield running


@pytest.mark.parametrize("provider", list(UPSTREAMS))
@pytest.mark.parametrize("client_name", list(CLIENTS))
def test_streams_are_relayed_piece_by_piece(
        gateway: Gateway, mock_upstream: MockServer, client_name: str, provider: str) -> None:
    assert_relayed(gateway, mock_upstream, client_name, provider)


def test_whole_answers_and_embeddings_are_answered_and_recorded(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0)
    chat = client.chat.completions.with_raw_response.create(
        model="myopenai/gpt-4o-mini", messages=[{"role": "user", "content": "hello over another transport"}])
    assert chat.parse().choices[0].message.content
    embedded = client.embeddings.with_raw_response.create(model="myollama/nomic-embed-text",
                                                          input="hello")
    assert len(embedded.parse().data[0].embedding) > 0
    for raw in (chat, embedded):
        row = gateway.usage_row(raw.headers["x-request-id"], timeout=20)
        assert row["status"] == 200
