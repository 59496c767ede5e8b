"""Provider types: which executor family serves them and where they live by default.

Kept as data so that a new OpenAI-compatible provider is a line, not code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderType:
    family: str            # executor family: openai, openai-responses, anthropic, gemini, ollama
    base_url: str          # default when a provider gives none
    prefix: str = ""       # short alias usable as "prefix/model"


PROVIDER_TYPES: dict[str, ProviderType] = {
    "openai": ProviderType("openai", "https://api.openai.com/v1", "oai"),
    "openai-compatible": ProviderType("openai", ""),
    "openai-responses": ProviderType("openai-responses", "https://api.openai.com/v1"),
    "anthropic": ProviderType("anthropic", "https://api.anthropic.com/v1", "ant"),
    "anthropic-compatible": ProviderType("anthropic", ""),
    "gemini": ProviderType("gemini", "https://generativelanguage.googleapis.com/v1beta", "gem"),
    "ollama": ProviderType("ollama", "http://127.0.0.1:11434", "ollama"),
    "mistral": ProviderType("openai", "https://api.mistral.ai/v1", "mistral"),
    "groq": ProviderType("openai", "https://api.groq.com/openai/v1", "groq"),
    "together": ProviderType("openai", "https://api.together.xyz/v1", "together"),
    "fireworks": ProviderType("openai", "https://api.fireworks.ai/inference/v1", "fireworks"),
    "deepseek": ProviderType("openai", "https://api.deepseek.com/v1", "deepseek"),
    "xai": ProviderType("openai", "https://api.x.ai/v1", "xai"),
    "openrouter": ProviderType("openai", "https://openrouter.ai/api/v1", "openrouter"),
}


def provider_type(name: str) -> ProviderType | None:
    return PROVIDER_TYPES.get(name)
