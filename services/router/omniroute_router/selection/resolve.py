"""Model resolution: what the client named → a tree of targets. A name is an alias (followed),
a combo (its steps, each resolved the same way, so combos nest), `provider/*` (every model the
provider lists, in order) or `provider/model` (a provider id or its short prefix)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omniroute.catalog import provider_type
from omniroute.config.routing_spec import ComboSpec
from omniroute.config.snapshot import ConfigSnapshot, Connection, Provider
from omniroute_router.errors import RoutingError

log = logging.getLogger("omniroute.router")
MAX_DEPTH = 8  # alias chains and combo nesting; deeper is almost surely a cycle


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    model: str  # the provider's own model name

    @property
    def name(self) -> str:
        return f"{self.provider.id}/{self.model}"


@dataclass(frozen=True, slots=True)
class ComboNode:
    combo: ComboSpec
    steps: tuple[Target | ComboNode, ...]

    @property
    def name(self) -> str:
        return self.combo.name


Node = Target | ComboNode


def resolve(snapshot: ConfigSnapshot, requested: str) -> Node:
    return _resolve(snapshot, requested, 0, ())


def canonical_name(snapshot: ConfigSnapshot, requested: str) -> str:
    """The name after following aliases (what policies and allow-lists also match)."""
    name, seen = requested, 0
    while name in snapshot.aliases and seen < MAX_DEPTH:
        name, seen = snapshot.aliases[name], seen + 1
    return name


def _resolve(snapshot: ConfigSnapshot, name: str, depth: int, path: tuple[str, ...]) -> Node:
    if depth > MAX_DEPTH or name in path:
        raise RoutingError(400, f"The model {name!r} refers to itself (alias or combo cycle: "
                                f"{' → '.join((*path, name))}).", code="model_cycle")
    if name in snapshot.aliases:
        return _resolve(snapshot, snapshot.aliases[name], depth + 1, (*path, name))
    combo = snapshot.combos.get(name)
    if combo is not None and combo.enabled:
        return _combo(snapshot, combo, depth, (*path, name))
    return _direct(snapshot, name)


def _combo(snapshot: ConfigSnapshot, combo: ComboSpec, depth: int, path: tuple[str, ...]) -> ComboNode:
    steps: list[Node] = []
    for step in combo.models:
        try:
            steps.append(_resolve(snapshot, step, depth + 1, path))
        except RoutingError as exc:
            if exc.code == "model_cycle":
                raise
            # A step whose provider was removed or disabled must not take the combo down.
            log.warning("combo %s: step %s skipped: %s", combo.name, step, exc.message)
    if not steps:
        raise RoutingError(503, f"No step of the combo {combo.name!r} can be served now.",
                           code="no_target", type_="server_error")
    return ComboNode(combo, tuple(steps))


def _direct(snapshot: ConfigSnapshot, requested: str) -> Node:
    provider_name, slash, model = requested.partition("/")
    if not slash or not provider_name or not model:
        raise RoutingError(400, f"The model {requested!r} does not exist: name it as "
                                "'provider/model' (e.g. 'myopenai/gpt-4o-mini'), an alias or a combo.",
                           code="model_not_found")
    provider = snapshot.providers.get(provider_name) or _by_prefix(snapshot, provider_name)
    if provider is None:
        raise RoutingError(404, f"The model {requested!r} does not exist: no provider named "
                                f"{provider_name!r} is configured.", code="model_not_found")
    if not provider.enabled:
        raise RoutingError(404, f"The provider {provider.id!r} is disabled.", code="provider_disabled")
    if model == "*":
        if not provider.models:
            raise RoutingError(404, f"The provider {provider.id!r} lists no models for {requested!r}.",
                               code="model_not_found")
        group = ComboSpec.model_construct(name=requested, strategy="priority",
                                          models=list(provider.models), weights=None, max_retries=0,
                                          retry_delay_ms=0, timeout_s=None, enabled=True)
        return ComboNode(group, tuple(Target(provider, m) for m in provider.models))
    return Target(provider, model)


def _by_prefix(snapshot: ConfigSnapshot, prefix: str) -> Provider | None:
    for provider in snapshot.providers.values():
        kind = provider_type(provider.type)
        if kind is not None and kind.prefix == prefix:
            return provider
    return None


def targets(node: Node) -> list[Target]:
    """Every target of a tree, depth first (for allow-lists and availability)."""
    if isinstance(node, Target):
        return [node]
    return [t for step in node.steps for t in targets(step)]


def enabled_connections(provider: Provider) -> list[Connection]:
    """Enabled connections by priority (lower first); cooldowns and breakers filter further."""
    return sorted((c for c in provider.connections if c.enabled), key=lambda c: c.priority)
