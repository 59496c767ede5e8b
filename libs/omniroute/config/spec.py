"""The configuration's declarative shapes, shared by the OMNIROUTE_CONFIG file and the admin API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

    def stored(self) -> dict[str, int]:
        return self.model_dump(exclude_none=True)


class TeamSpec(BaseModel):
    """A team: its allowed models (None = every model), rate limits and budget. The id is the
    natural key (config file, API path); the name is unique too."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    allowed_models: list[str] | None = None
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    budget: BudgetSpec | None = None

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


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderSpec] = Field(default_factory=list)
    teams: list[TeamSpec] = Field(default_factory=list)   # applied before the keys naming them
    people: list[PersonSpec] = Field(default_factory=list)   # after teams, before keys
    keys: list[KeySpec] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)   # alias → model, alias or combo
    combos: list[ComboSpec] = Field(default_factory=list)
    routing: RoutingSettings | None = None  # only the fields the file names are applied
