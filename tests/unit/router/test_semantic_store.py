"""Where the semantic cache's Qdrant is, from the settings: a server (URL, API key), this
process only, or a local path; and the collection names (prefix, env, embedder)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest.mock import AsyncMock

import pytest
from qdrant_client import AsyncQdrantClient

from omniroute.settings import Settings
from omniroute_router.caches import semantic_store
from omniroute_router.caches.semantic_store import SemanticStore, location

BASE = Settings(env="t1")


def _with(url: str = "", key: str = "", prefix: str = "") -> Settings:
    return dataclasses.replace(BASE, qdrant_url=url, qdrant_api_key=key, qdrant_collection_prefix=prefix)


def test_a_url_is_a_server_with_the_api_key_from_the_settings() -> None:
    assert location(_with(url="https://qdrant.example:6333", key="k-1")) == {
        "url": "https://qdrant.example:6333", "api_key": "k-1"}
    assert location(_with(url=" http://qdrant:6333 ")) == {"url": "http://qdrant:6333", "api_key": None}


def test_otherwise_local_mode() -> None:
    assert location(_with(url=":memory:")) == {"location": ":memory:"}
    assert location(_with(url="/var/cache/q")) == {"path": "/var/cache/q"}
    assert location(_with(url="")) == {"path": str(Path(".omniroute") / "qdrant" / "t1")}


def test_collection_names_carry_the_prefix() -> None:
    stats = AsyncMock()
    assert SemanticStore(_with(), stats).collection("minilm/v2") == "t1_semcache_minilm_v2"
    assert SemanticStore(_with(prefix="semcache."), stats).collection("hash") == (
        "semcache.t1_semcache_hash")


async def test_the_client_is_built_with_the_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, object]] = []

    def client(**kwargs: object) -> AsyncQdrantClient:
        built.append(kwargs)
        return AsyncMock(spec=AsyncQdrantClient)

    monkeypatch.setattr(semantic_store, "AsyncQdrantClient", client)
    store = SemanticStore(_with(url="http://qdrant:6333", key="k-2"), AsyncMock())
    assert await store.ready()
    assert built == [{"url": "http://qdrant:6333", "api_key": "k-2"}]
