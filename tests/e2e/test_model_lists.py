"""The model lists of every client format offer what the provider's own list offers (read by the
admin in the background, never on a request's path), plus aliases and combos; each key sees only
what it may use; a list that cannot be read keeps its last good one and the provider says why.
Listed through the official SDKs' list calls (openai, google-genai, ollama)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import ollama
import openai
import pytest
from google import genai
from google.genai import types as gt

from tests.mocks.common import SCRIPTED, SCRIPTED_MODELS
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("model-lists")

FULL_KEY = "sk-omni-lists-full-00000000000"
NARROW_KEY = "sk-omni-lists-narrow-000000000"
CREDENTIAL = "sk-upstream-lists"
X, Y = "model-x", "model-y-embedding"   # what the mock provider's own list offers
READ_EVERY_S = 5.0                      # omniroute_router.models.READ_EVERY_S


@pytest.fixture(scope="module")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    SCRIPTED_MODELS[CREDENTIAL] = [X, Y]
    config = {
        "providers": [{"id": "lists", "type": "openai-compatible", "base_url": f"{mock_upstream.url}/v1",
                       "models": [], "connections": [{"name": "main", "api_key": CREDENTIAL}]}],
        "keys": [{"name": "full", "key": FULL_KEY},
                 {"name": "narrow", "key": NARROW_KEY, "allowed_models": [f"lists/{X}"]}],
        "aliases": {"ex": f"lists/{X}"},
        "combos": [{"name": "both", "models": [f"lists/{X}", f"lists/{Y}"]}],
    }
    try:
        with running_gateway(tmp_path_factory.mktemp("lists"), config, api_key=FULL_KEY) as running:
            yield running
    finally:
        SCRIPTED_MODELS.pop(CREDENTIAL, None)
        SCRIPTED.pop(CREDENTIAL, None)


def _openai(gateway: Gateway, key: str) -> set[str]:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)
    return {m.id for m in client.models.list()}


def _gemini(gateway: Gateway, key: str) -> set[str]:
    client = genai.Client(api_key=key, http_options=gt.HttpOptions(base_url=gateway.url, api_version="v1beta"))
    return {str(m.name).removeprefix("models/") for m in client.models.list()}


def _ollama(gateway: Gateway, key: str) -> set[str]:
    client = ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {key}"})
    return {str(m.model) for m in client.list().models}


LISTS = {"openai": _openai, "gemini": _gemini, "ollama": _ollama}


def _discovered(gateway: Gateway) -> set[str]:
    """Until the admin's first background read has reached the router."""
    deadline = time.monotonic() + 40
    while True:
        listed = _openai(gateway, FULL_KEY)
        if {f"lists/{X}", f"lists/{Y}"} <= listed or time.monotonic() > deadline:
            return listed
        time.sleep(0.5)


def _list_reads(mock: MockServer) -> int:
    return sum(1 for r in mock.requests(path="/v1/models")
               if r.headers.get("authorization") == f"Bearer {CREDENTIAL}")


@pytest.mark.parametrize("client_format", list(LISTS))
def test_every_format_lists_the_providers_own_models_aliases_and_combos(
        gateway: Gateway, mock_upstream: MockServer, client_format: str) -> None:
    assert {f"lists/{X}", f"lists/{Y}"} <= _discovered(gateway)
    reads = _list_reads(mock_upstream)
    listed = LISTS[client_format](gateway, FULL_KEY)
    assert {f"lists/{X}", f"lists/{Y}", "ex", "both"} <= listed
    assert _list_reads(mock_upstream) == reads   # listing does not ask the provider


@pytest.mark.parametrize("client_format", list(LISTS))
def test_a_restricted_key_sees_only_what_it_may_use(gateway: Gateway, client_format: str) -> None:
    _discovered(gateway)
    # X, and the alias of X; not Y, nor the combo that includes Y.
    assert LISTS[client_format](gateway, NARROW_KEY) == {f"lists/{X}", "ex"}


def test_kinds_come_from_the_listing(gateway: Gateway) -> None:
    _discovered(gateway)
    with contextlib.closing(gateway.admin_client()) as admin:
        models = admin.get("/api/providers/lists/models").json()["models"]
    assert {(m["id"], m["kind"]) for m in models} == {(X, "chat"), (Y, "embedding")}


def test_a_list_that_cannot_be_read_keeps_the_last_good_one_and_says_why(gateway: Gateway) -> None:
    _discovered(gateway)
    SCRIPTED[CREDENTIAL] = "mock-503"
    try:
        with contextlib.closing(gateway.admin_client()) as admin:
            failed = admin.get("/api/providers/lists/models", params={"refresh": "true"})
            assert failed.status_code == 502, failed.text
            status = admin.get("/api/providers/lists").json()["modelList"]
        assert status["count"] == 2 and status["fetchedAt"] and status["source"] == "provider"
        assert "503" in status["error"] and status["failedAt"] >= status["fetchedAt"]
        time.sleep(READ_EVERY_S + 1)   # every router has re-read the store since
        for client_format, listing in LISTS.items():
            assert {f"lists/{X}", f"lists/{Y}"} <= listing(gateway, FULL_KEY), client_format
    finally:
        del SCRIPTED[CREDENTIAL]
    with contextlib.closing(gateway.admin_client()) as admin:   # readable again: the error is gone
        assert admin.get("/api/providers/lists/models", params={"refresh": "true"}).status_code == 200
        assert admin.get("/api/providers/lists").json()["modelList"]["error"] is None
