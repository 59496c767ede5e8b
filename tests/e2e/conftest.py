"""One running stack (all six services) and one mock upstream per test worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.providers_config import media_providers
from tests.mocks.server import MockServer, start_mock_server
from tests.support import Gateway, running_gateway

API_KEY = "sk-omni-e2e-0123456789abcdef"


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockServer]:
    with start_mock_server() as server:
        yield server


def gateway_config(mock_upstream: MockServer) -> dict[str, Any]:
    """The e2e stack's configuration (also started on the other hop transports:
    test_other_hop_transports.py)."""
    return {
        "providers": [
            {"id": "myopenai", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
             "models": ["gpt-4o-mini", "mock-tool"],
             "connections": [{"name": "primary", "api_key": "sk-upstream-1"}]},
            # One provider per upstream family, for the format matrix (test_formats_*.py).
            {"id": "myanthropic", "type": "anthropic", "base_url": f"{mock_upstream.url}/v1",
             "models": ["mock-text"], "connections": [{"name": "primary", "api_key": "sk-ant-upstream"}]},
            {"id": "mygemini", "type": "gemini", "base_url": f"{mock_upstream.url}/v1beta",
             "models": ["mock-text"], "connections": [{"name": "primary", "api_key": "gm-upstream"}]},
            {"id": "myollama", "type": "ollama", "base_url": mock_upstream.url,
             "models": ["mock-text"], "connections": [{"name": "primary", "api_key": "ol-upstream"}]},
            {"id": "myresponses", "type": "openai-responses", "base_url": f"{mock_upstream.url}/v1",
             "models": ["mock-text"], "connections": [{"name": "primary", "api_key": "sk-resp-upstream"}]},
            # Catalog types beyond the five families (tests/e2e/test_providers_*.py): each speaks
            # its own auth style and URL shape to the mock.
            *media_providers(mock_upstream.url),
        ],
        "keys": [{"name": "e2e", "key": API_KEY}],
    }


@pytest.fixture(scope="session")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("stack"), gateway_config(mock_upstream), api_key=API_KEY) as running:
        yield running
