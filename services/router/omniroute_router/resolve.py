"""Model resolution: what the client named → the provider models that may answer, in order."""

from __future__ import annotations

from dataclasses import dataclass

from omniroute.catalog import provider_type
from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection, Provider

from omniroute_router.errors import RoutingError


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: Provider
    model: str  # the provider's own model name


def resolve(snapshot: ConfigSnapshot, requested: str) -> list[Candidate]:
    provider_name, slash, model = requested.partition("/")
    if not slash or not provider_name or not model:
        raise RoutingError(400, f"The model {requested!r} does not exist: name it as "
                                "'provider/model' (e.g. 'myopenai/gpt-4o-mini').",
                           code="model_not_found")
    provider = snapshot.providers.get(provider_name) or _by_prefix(snapshot, provider_name)
    if provider is None:
        raise RoutingError(404, f"The model {requested!r} does not exist: no provider named "
                                f"{provider_name!r} is configured.", code="model_not_found")
    if not provider.enabled:
        raise RoutingError(404, f"The provider {provider.id!r} is disabled.", code="provider_disabled")
    return [Candidate(provider, model)]


def _by_prefix(snapshot: ConfigSnapshot, prefix: str) -> Provider | None:
    for provider in snapshot.providers.values():
        kind = provider_type(provider.type)
        if kind is not None and kind.prefix == prefix:
            return provider
    return None


def check_key_allows(key: ApiKey | None, requested: str, candidate: Candidate) -> None:
    if key is None or key.allowed_models is None:
        return
    allowed = key.allowed_models
    if requested in allowed or f"{candidate.provider.id}/{candidate.model}" in allowed \
            or f"{candidate.provider.id}/*" in allowed:
        return
    raise RoutingError(403, f"This API key may not use the model {requested!r}.",
                       code="model_not_allowed", type_="permission_error")


def usable_connections(provider: Provider) -> list[Connection]:
    """Enabled connections by priority (lower first); cooldowns and breakers filter further."""
    connections = [c for c in provider.connections if c.enabled]
    if not connections:
        raise RoutingError(503, f"The provider {provider.id!r} has no enabled connection.",
                           code="no_connection", type_="server_error")
    return sorted(connections, key=lambda c: c.priority)
