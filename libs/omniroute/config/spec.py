"""The configuration's declarative shapes, shared by the OMNIROUTE_CONFIG file and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from omniroute import ssrf
from omniroute.catalog import provider_type
from omniroute.config.routing_spec import ComboSpec, RoutingSettings

_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$"


class ConnectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID_PATTERN)
    api_key: str | None = None
    priority: int = 0
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)


class ProviderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    type: str
    base_url: str | None = None
    models: list[str] = Field(default_factory=list)
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    connections: list[ConnectionSpec] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if provider_type(value) is None:
            raise ValueError(f"unknown provider type {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _reachable_safely(cls, value: str | None) -> str | None:
        # Config time (file, admin API, dashboard): a base URL aimed at metadata or, unless
        # allowed, private addresses is refused before any request could use it.
        if value:
            reason = ssrf.refusal(value, allow_private=ssrf.private_allowed())
            if reason:
                raise ValueError(f"base_url refused: {reason}")
        return value

    @field_validator("connections")
    @classmethod
    def _unique_names(cls, value: list[ConnectionSpec]) -> list[ConnectionSpec]:
        names = [c.name for c in value]
        if len(names) != len(set(names)):
            raise ValueError("connection names must be unique within a provider")
        return value


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID_PATTERN)
    key: str | None = Field(default=None, min_length=16)
    enabled: bool = True
    allowed_models: list[str] | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    budget: dict[str, Any] | None = None
    expires_at: datetime | None = None


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderSpec] = Field(default_factory=list)
    keys: list[KeySpec] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)   # alias → model, alias or combo
    combos: list[ComboSpec] = Field(default_factory=list)
    routing: RoutingSettings | None = None  # only the fields the file names are applied
