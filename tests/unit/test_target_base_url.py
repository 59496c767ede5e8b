"""A family's base URL is accepted with or without its API version segment (omniroute.targets)."""

from __future__ import annotations

import pytest

from omniroute.targets import versioned_base_url


@pytest.mark.parametrize(("family", "given", "used"), [
    ("anthropic", "https://api.anthropic.com", "https://api.anthropic.com/v1"),
    ("anthropic", "https://api.anthropic.com/", "https://api.anthropic.com/v1"),
    ("anthropic", "https://api.anthropic.com/v1", "https://api.anthropic.com/v1"),
    ("anthropic", "https://api.anthropic.com/v1/", "https://api.anthropic.com/v1"),
    # A compatible server's documented ANTHROPIC_BASE_URL: the SDK adds /v1 to it too.
    ("anthropic", "https://api.example.com/api/anthropic", "https://api.example.com/api/anthropic/v1"),
    ("gemini", "https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
    ("gemini", "https://generativelanguage.googleapis.com/v1beta",
     "https://generativelanguage.googleapis.com/v1beta"),
    ("gemini", "https://generativelanguage.googleapis.com/v1", "https://generativelanguage.googleapis.com/v1"),
    ("gemini", "https://generativelanguage.googleapis.com/v1alpha",
     "https://generativelanguage.googleapis.com/v1alpha"),
    # Other families' base URLs are theirs to say (an Ollama server has no version segment).
    ("ollama", "http://localhost:11434", "http://localhost:11434"),
    ("openai", "https://api.openai.com/v1/", "https://api.openai.com/v1"),
    ("anthropic", "", ""),
])
def test_version_segment_added_only_when_missing(family: str, given: str, used: str) -> None:
    assert versioned_base_url(family, given) == used
