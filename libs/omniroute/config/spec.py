"""The configuration's declarative shapes, shared by the OMNIROUTE_CONFIG file and the admin API."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class BudgetSpec(BaseModel):
    """A spend budget, a key's or a team's: what omniroute.shared_state.budget.Budget.parse reads.
    Its own names (limit_usd, alert_at, warn_at) and the stored ones (limit, alertAt, warnAt)
    are both accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    limit_usd: Decimal = Field(alias="limit", ge=0, le=10_000_000)
    period: Literal["daily", "weekly", "monthly"] = "monthly"
    warn_at: float | None = Field(default=None, alias="warnAt", ge=0, le=1)
    # Shares of the limit that send a budget alert once per period each.
    alert_at: list[float] | None = Field(default=None, alias="alertAt", max_length=10)

    @field_validator("alert_at")
    @classmethod
    def _shares(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0 < share <= 1 for share in value):
            raise ValueError("alert_at shares must be in (0, 1]")
        return value

    def stored(self) -> dict[str, Any]:
        """The JSON document kept in the budget column (the names Budget.parse reads)."""
        document: dict[str, Any] = {"limit": float(self.limit_usd), "period": self.period}
        if self.warn_at is not None:
            document["warnAt"] = self.warn_at
        if self.alert_at is not None:
            document["alertAt"] = sorted(set(self.alert_at))
        return document


def checked_budget(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A key's budget as given, once BudgetSpec accepts it (an empty one: no budget)."""
    if not value:
        return None
    BudgetSpec.model_validate(value)
    return value


class LimitsSpec(BaseModel):
    """Rate limits, a key's or a team's (a team's are shared by all its keys, every replica)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=0)
    # MCP tool calls (tools/call) per minute through the gateway's /mcp endpoint (issue 21).
    tool_calls_per_minute: int | None = Field(default=None, ge=0)

    def stored(self) -> dict[str, int]:
        return self.model_dump(exclude_none=True)


# A server id is the prefix of its namespaced tool and prompt names ("<server>__<tool>"): no "__".
_MCP_SERVER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$")
_MCP_TOOL_PATTERN = re.compile(r"^[^\s]{1,2000}$")   # a tool or prompt name, or a resource URI


def mcp_server_id_ok(server_id: str) -> bool:
    return bool(_MCP_SERVER_ID.match(server_id)) and "__" not in server_id


def checked_mcp_access(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    """MCP access, a team's or a key's: {server id: ["*"] (every tool) | [tool names]}; None
    (a team: no MCP server at all; a key: its team's). An empty list grants nothing."""
    if value is None:
        return None
    if len(value) > 200:
        raise ValueError("at most 200 MCP servers")
    checked: dict[str, list[str]] = {}
    for server, tools in value.items():
        if not mcp_server_id_ok(server):
            raise ValueError(f"{server!r} is not an MCP server id")
        if len(tools) > 1000 or not all(_MCP_TOOL_PATTERN.match(t) for t in tools):
            raise ValueError(f"{server}: give [\"*\"] or up to 1000 tool names (no spaces)")
        if "*" in tools and len(tools) > 1:
            raise ValueError(f"{server}: \"*\" (every tool) stands alone")
        checked[server] = sorted(set(tools))
    return checked


class TeamSpec(BaseModel):
    """A team: its allowed models (None = every model), rate limits and budget. The id is the
    natural key (config file, API path); the name is unique too."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    allowed_models: list[str] | None = None
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    budget: BudgetSpec | None = None
    # MCP tools the team's keys may use at most (None: none, default deny).
    mcp_access: dict[str, list[str]] | None = None

    @field_validator("mcp_access")
    @classmethod
    def _mcp_access(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return checked_mcp_access(value)

    @property
    def display_name(self) -> str:
        return self.name or self.id


class PersonSpec(BaseModel):
    """A person who manages the gateway (API body, dashboard form and config file `people:`):
    a role and, for a team admin, the teams they manage (each must exist)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(default="", max_length=200)
    role: Literal["owner", "admin", "team_admin", "viewer"]
    team_ids: list[str] = Field(default_factory=list, max_length=100)
    enabled: bool = True


# A person is named by id or by e-mail (resolved to the id when the key is stored).
_PERSON_PATTERN = r"^[^\s]{1,200}$"


class KeySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID_PATTERN)
    key: str | None = Field(default=None, min_length=16)
    enabled: bool = True
    allowed_models: list[str] | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    budget: dict[str, Any] | None = None
    expires_at: datetime | None = None
    team: str = Field(default="default", pattern=_ID_PATTERN)
    person: str | None = Field(default=None, pattern=_PERSON_PATTERN)
    # MCP tools this key may use, narrowing its team's (None: the team's).
    mcp_access: dict[str, list[str]] | None = None

    @field_validator("mcp_access")
    @classmethod
    def _mcp_access(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return checked_mcp_access(value)

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            return checked_budget(value)
        except ValidationError as exc:
            raise ValueError(f"budget: {_first_error(exc)}") from None

    @field_validator("limits")
    @classmethod
    def _limits(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            LimitsSpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"limits: {_first_error(exc)}") from None
        return value


class McpServerSpec(BaseModel):
    """An upstream MCP tool server (API body, dashboard form and config file `mcp_servers:`).
    `headers` (http) and `env` (stdio) are the credentials the gateway injects: write-only,
    stored encrypted, shown masked; None leaves the stored ones as they are, {} removes them.
    `oauth_connection`: a connection id (`<provider>:<name>`) whose OAuth access token is sent
    as the bearer token instead."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = Field(default="", max_length=200)
    transport: Literal["http", "stdio"] = "http"
    url: str | None = Field(default=None, max_length=2000)
    command: list[str] | None = Field(default=None, min_length=1, max_length=100)
    headers: dict[str, str] | None = None
    env: dict[str, str] | None = None
    oauth_connection: str | None = Field(default=None, min_length=1, max_length=200)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    price_per_call_usd: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not mcp_server_id_ok(value):
            raise ValueError("an MCP server id is 1-64 letters, digits, '.', '-', '_' (no '__': it "
                             "separates the server from the tool in namespaced names)")
        return value

    @field_validator("url")
    @classmethod
    def _reachable_safely(cls, value: str | None) -> str | None:
        # As a provider's base_url: metadata services always, private addresses unless allowed.
        if value:
            reason = ssrf.refusal(value, allow_private=ssrf.private_allowed())
            if reason:
                raise ValueError(f"url refused: {reason}")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and not all(re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$", name) for name in value):
            raise ValueError("header names must be HTTP tokens")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerSpec:
        if self.transport == "http":
            if not self.url:
                raise ValueError("an http server needs a url")
            if self.command or self.env:
                raise ValueError("command and env are for stdio servers")
        else:
            if not self.command:
                raise ValueError("a stdio server needs a command (argv list)")
            if self.url or self.headers or self.oauth_connection:
                raise ValueError("url, headers and oauth_connection are for http servers")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderSpec] = Field(default_factory=list)
    # After providers (an OAuth connection they name), before the teams and keys granting them.
    mcp_servers: list[McpServerSpec] = Field(default_factory=list)
    teams: list[TeamSpec] = Field(default_factory=list)   # applied before the keys naming them
    people: list[PersonSpec] = Field(default_factory=list)   # after teams, before keys
    keys: list[KeySpec] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)   # alias → model, alias or combo
    combos: list[ComboSpec] = Field(default_factory=list)
    routing: RoutingSettings | None = None  # only the fields the file names are applied
