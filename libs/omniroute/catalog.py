"""Provider types: which executor family serves them, where they live by default, how they
authenticate, what they can do and how their models are listed.

The table itself is data (`catalog.yaml`, shipped as package data) so that a new provider that
speaks a known wire format is a few lines of YAML, not code."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

AUTH_STYLES = frozenset({"bearer", "x-api-key", "x-goog-api-key", "api-key", "query-key", "token",
                         "raw", "oauth", "none"})
CAPABILITIES = ("chat", "embeddings", "images", "audio")
# Model kinds as /v1/models and the catalog name them, and the capability each needs.
KIND_OF_CAPABILITY = {"chat": "chat", "embeddings": "embedding", "images": "image", "audio": "audio"}


@dataclass(frozen=True, slots=True)
class RequestRules:
    """What a type's API insists on in every chat request body, beyond headers (catalog.yaml
    `request`; the executor applies them, omniroute_executor.families.type_rules)."""

    system_prefix: str = ""    # Anthropic: the system prompt must start with this block
    instructions: str = ""     # Responses: `instructions` when the caller's body has none
    fields: dict[str, Any] = field(default_factory=dict)  # set on every body
    drop: tuple[str, ...] = ()  # fields the API refuses
    stream: bool = False       # the API only streams: a non-streaming caller's answer is collected


@dataclass(frozen=True, slots=True)
class ProviderType:
    family: str            # executor family: openai, openai-responses, anthropic, gemini, ollama …
    base_url: str          # default when a provider gives none
    prefix: str = ""       # short alias usable as "prefix/model"
    auth: str = "bearer"
    capabilities: tuple[str, ...] = ("chat",)
    list_models: str = "openai"
    url_style: str = ""    # "azure": deployment URLs with ?api-version
    api_version: str = ""
    models: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind → names
    headers: dict[str, str] = field(default_factory=dict)  # sent on every API call
    # Subscription presets: the provider's own OAuth client (see catalog.yaml's `oauth`).
    oauth: dict[str, Any] = field(default_factory=dict)
    request: RequestRules = field(default_factory=RequestRules)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


def _entry(name: str, raw: dict[str, Any]) -> ProviderType:
    auth = str(raw.get("auth") or "bearer")
    if auth not in AUTH_STYLES:
        raise ValueError(f"catalog: {name}: unknown auth style {auth!r}")
    capabilities = tuple(str(c) for c in raw.get("capabilities") or ("chat",))
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"catalog: {name}: unknown capabilities {sorted(unknown)}")
    models = {str(kind): tuple(str(m) for m in names or ())
              for kind, names in (raw.get("models") or {}).items()}
    headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
    oauth = dict(raw.get("oauth") or {})
    if oauth and not (oauth.get("token_url") and oauth.get("client_id")):
        raise ValueError(f"catalog: {name}: an oauth preset needs token_url and client_id")
    rules = dict(raw.get("request") or {})
    if unknown := set(rules) - set(RequestRules.__dataclass_fields__):
        raise ValueError(f"catalog: {name}: unknown request rules {sorted(unknown)}")
    request = RequestRules(system_prefix=str(rules.get("system_prefix") or ""),
                           instructions=str(rules.get("instructions") or ""),
                           fields=dict(rules.get("fields") or {}),
                           drop=tuple(str(f) for f in rules.get("drop") or ()),
                           stream=bool(rules.get("stream")))
    return ProviderType(family=str(raw["family"]), base_url=str(raw.get("base_url") or ""),
                        prefix=str(raw.get("prefix") or ""), auth=auth, capabilities=capabilities,
                        list_models=str(raw.get("list_models") or "openai"),
                        url_style=str(raw.get("url_style") or ""),
                        api_version=str(raw.get("api_version") or ""), models=models,
                        headers=headers, oauth=oauth, request=request)


@functools.cache
def _load() -> dict[str, ProviderType]:
    text = resources.files("omniroute").joinpath("catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    return {str(name): _entry(str(name), entry) for name, entry in raw.items()}


PROVIDER_TYPES: dict[str, ProviderType] = _load()


def provider_type(name: str) -> ProviderType | None:
    return PROVIDER_TYPES.get(name)


def auth_style(type_name: str, settings: dict[str, Any] | None = None) -> str:
    """The provider's own `settings.auth` wins over its type's default (a compatible provider
    behind a gateway that wants x-api-key, say)."""
    chosen = (settings or {}).get("auth")
    if isinstance(chosen, str) and chosen in AUTH_STYLES:
        return chosen
    kind = provider_type(type_name)
    return kind.auth if kind else "bearer"
