"""Routing shapes: aliases, combos and the global routing settings (resilience profiles, fallback
model, request shaping, policies, caches). Shared by the config file, the admin API and the
router's snapshot; every field has a default so that an empty config routes sensibly."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$"

Strategy = Literal["priority", "weighted", "round-robin", "fill-first", "p2c", "random", "least-used",
                   "cost-optimized", "latency-optimized", "lkgp"]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComboSpec(_Spec):
    name: str = Field(pattern=_NAME)
    strategy: Strategy = "priority"
    # Steps: "provider/model", "provider/*", an alias or another combo's name.
    models: list[str] = Field(min_length=1)
    weights: list[float] | None = None      # for weighted: one per step
    max_retries: int = Field(default=0, ge=0, le=10)   # extra attempts of a failing step
    retry_delay_ms: int = Field(default=0, ge=0, le=60_000)
    timeout_s: float | None = Field(default=None, gt=0)  # per upstream attempt
    enabled: bool = True

    @model_validator(mode="after")
    def _weights_match(self) -> ComboSpec:
        if self.weights is not None and len(self.weights) != len(self.models):
            raise ValueError("weights must have one entry per model")
        if self.name in self.models:
            raise ValueError("a combo cannot name itself as a step")
        return self


class AliasSpec(_Spec):
    alias: str = Field(pattern=_NAME)
    model: str = Field(min_length=1)


class ResilienceProfile(_Spec):
    failure_threshold: int = Field(default=5, ge=1)    # consecutive failures → OPEN
    degraded_threshold: int = Field(default=2, ge=1)   # consecutive failures → DEGRADED
    reset_timeout_s: float = Field(default=30.0, gt=0)  # OPEN → HALF_OPEN after this
    # Upstream statuses that count as a failure of the connection (caller errors do not).
    statuses: list[int] = Field(default_factory=lambda: [408, 500, 502, 503, 504, 529])


class CooldownSettings(_Spec):
    base_s: float = Field(default=1.0, gt=0)        # first cooldown; doubles per level
    max_s: float = Field(default=300.0, gt=0)
    auth_s: float = Field(default=300.0, gt=0)      # 401/403: the credential needs attention
    model_lock_s: float = Field(default=3600.0, gt=0)  # 404: that model on that connection


class ResilienceSettings(_Spec):
    profiles: dict[str, ResilienceProfile] = Field(
        default_factory=lambda: {"default": ResilienceProfile()})
    default_profile: str = "default"
    cooldown: CooldownSettings = Field(default_factory=CooldownSettings)

    def profile(self, name: str | None) -> ResilienceProfile:
        return (self.profiles.get(name or self.default_profile)
                or self.profiles.get(self.default_profile) or ResilienceProfile())


class SystemPromptSettings(_Spec):
    enabled: bool = False
    prefix: str = ""   # placed before the caller's system prompt
    suffix: str = ""   # placed after it


class ThinkingBudgetSettings(_Spec):
    # passthrough: untouched; custom: always budget_tokens; auto: budget_tokens when the caller
    # asked for reasoning without a budget; adaptive: scale with the prompt size, capped.
    mode: Literal["passthrough", "auto", "custom", "adaptive"] = "passthrough"
    budget_tokens: int = Field(default=8192, ge=0)


class PolicySpec(_Spec):
    name: str = Field(pattern=_NAME)
    keys: list[str] | None = None           # key names or ids this applies to; None = every key
    allow_providers: list[str] | None = None  # None = every provider
    block_models: list[str] = Field(default_factory=list)  # exact, "provider/*" or a combo/alias
    rewrite: dict[str, str] = Field(default_factory=dict)  # requested model → another model
    enabled: bool = True


class CacheSettings(_Spec):
    enabled: bool = True
    # deterministic: temperature 0 only (or when asked with Cache-Control: max-age); always: every
    # non-streaming and streaming chat; off: never.
    mode: Literal["deterministic", "always", "off"] = "deterministic"
    ttl_s: int = Field(default=3600, ge=1)
    # Semantic cache (Qdrant): off unless on for every key (semantic_enabled), for the keys named
    # here (names or ids; API keys have no settings column of their own), or per request
    # (X-OmniRoute-Semantic-Cache: true). A hit needs cosine similarity >= the threshold within
    # the same key and requested model and the same non-message parameters.
    semantic_enabled: bool = False
    semantic_keys: list[str] = Field(default_factory=list)
    semantic_threshold: float = Field(default=0.95, gt=0, le=1)
    semantic_ttl_s: int = Field(default=3600, ge=1)
    semantic_max_entries: int = Field(default=10_000, ge=1)
    # "" = the router's local hashing embedder; else a model the gateway serves ("provider/model",
    # an alias …), called through the executors' embeddings operation.
    semantic_model: str = ""


class IdempotencySettings(_Spec):
    window_ms: int = Field(default=5000, ge=100)


class RateLimitSettings(_Spec):
    default_limits: dict[str, int] = Field(default_factory=dict)  # rpm/tpm/concurrency for keys without
    lease_s: float = Field(default=120.0, gt=0)  # a concurrency slot not renewed by then is freed


class RoutingSettings(_Spec):
    """Everything global the router reads; stored one row per field (routing_settings table)."""

    fallback_model: str | None = None
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    system_prompt: SystemPromptSettings = Field(default_factory=SystemPromptSettings)
    thinking_budget: ThinkingBudgetSettings = Field(default_factory=ThinkingBudgetSettings)
    policies: list[PolicySpec] = Field(default_factory=list)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    idempotency: IdempotencySettings = Field(default_factory=IdempotencySettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    @classmethod
    def from_rows(cls, rows: dict[str, Any]) -> RoutingSettings:
        """From the table's key → value rows; unknown keys are ignored (newer writers)."""
        return cls.model_validate({k: v for k, v in rows.items() if k in cls.model_fields})
