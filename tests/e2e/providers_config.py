"""Providers added to the shared e2e stack for the catalog, embeddings, images and audio tests
(tests/e2e/test_providers_*.py). New ids only: the format tests' providers are untouched."""

from __future__ import annotations

from typing import Any


def media_providers(mock: str) -> list[dict[str, Any]]:
    def one(id_: str, type_: str, base: str, key: str, **settings: Any) -> dict[str, Any]:
        return {"id": id_, "type": type_, "base_url": base, "models": ["mock-text"],
                "settings": settings, "connections": [{"name": "main", "api_key": key}]}
    return [
        one("pv-xai", "xai", f"{mock}/v1", "xai-key", image_models=["grok-2-image"]),
        one("pv-together", "together", f"{mock}/v1", "tg-key",
            image_models=["black-forest-labs/FLUX.1-schnell"], embedding_models=["BAAI/bge-large-en-v1.5"]),
        one("pv-fireworks", "fireworks", f"{mock}/v1", "fw-key", image_models=["flux-1-schnell-fp8"]),
        one("pv-mistral", "mistral", f"{mock}/v1", "mi-key", embedding_models=["mistral-embed"]),
        one("pv-azure", "azure-openai", mock, "az-key"),
        one("pv-deepgram", "deepgram", mock, "dg-key", audio_models=["nova-3"]),
        one("pv-assembly", "assemblyai", mock, "aai-key", audio_models=["best"]),
        # An OpenAI-compatible server configured with the wrong auth style: the mock refuses it.
        one("pv-wrongauth", "openai-compatible", f"{mock}/v1", "wa-key", auth="x-api-key"),
        # Query-key auth (some Gemini-compatible gateways): the key in ?key=.
        one("pv-gemq", "gemini", f"{mock}/v1beta", "gq-key", auth="query-key"),
    ]
