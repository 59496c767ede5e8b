"""What this key may do: its own allow-list and expiry, its team's allow-list, then the global
routing policies (model rewrites, blocked models, allowed providers)."""

from __future__ import annotations

from omniroute.config.routing_spec import PolicySpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot
from omniroute_router.errors import RoutingError
from omniroute_router.selection.resolve import ComboNode, Node, Target, canonical_name, resolve, targets


def check_key(snapshot: ConfigSnapshot, key_id: str) -> ApiKey | None:
    key = snapshot.keys_by_id.get(key_id) if key_id else None
    if key_id and (key is None or not key.usable()):
        raise RoutingError(401, "This API key is not valid (revoked or expired).",
                           code="invalid_api_key", type_="authentication_error")
    return key


def applicable(snapshot: ConfigSnapshot, key: ApiKey | None) -> list[PolicySpec]:
    def applies(policy: PolicySpec) -> bool:
        if not policy.enabled:
            return False
        return policy.keys is None or (key is not None and (key.name in policy.keys or key.id in policy.keys))
    return [p for p in snapshot.routing.policies if applies(p)]


def rewrite(policies: list[PolicySpec], requested: str) -> str:
    for policy in policies:
        if requested in policy.rewrite:
            return policy.rewrite[requested]
    return requested


def _matches(patterns: list[str] | tuple[str, ...], names: set[str], target: Target | None) -> bool:
    if names & set(patterns):
        return True
    return target is not None and (target.name in patterns or f"{target.provider.id}/*" in patterns)


def check_access(snapshot: ConfigSnapshot, key: ApiKey | None, policies: list[PolicySpec],
                 requested: str, node: Node) -> None:
    """403 when the key's allow-list or a policy forbids this model (every target must pass:
    a combo is allowed as a whole when its name is allowed), or when no target's provider is
    allowed."""
    names = {requested, canonical_name(snapshot, requested)}
    leaves = targets(node)
    if key is not None and key.allowed_models is not None and not _matches(key.allowed_models, names, None):
        if not all(_matches(key.allowed_models, names, t) for t in leaves):
            raise RoutingError(403, f"This API key may not use the model {requested!r}.",
                               code="model_not_allowed", type_="permission_error")
    # The key's team narrows it further: the effective list is the key's ∩ the team's.
    team = snapshot.teams.get(key.team_id) if key is not None else None
    if team is not None and team.allowed_models is not None and not _matches(team.allowed_models, names, None):
        if not all(_matches(team.allowed_models, names, t) for t in leaves):
            raise RoutingError(403, f"The team {team.id!r} of this API key may not use the model "
                                    f"{requested!r}.", code="model_not_allowed", type_="permission_error")
    for policy in policies:
        blocked = _matches(policy.block_models, names, None) or any(
            _matches(policy.block_models, set(), t) for t in leaves)
        if blocked:
            raise RoutingError(403, f"The model {requested!r} is blocked by the policy "
                                    f"{policy.name!r}.", code="model_blocked", type_="permission_error")
    # A combo with an allowed member (or fallback model) is served by it, dispatch skips the
    # others; a model with none is refused here, as a policy refusal, not as "no account" (503).
    if leaves and not any(provider_allowed(policies, t) for t in leaves) and not any(
            provider_allowed(policies, t) for t in _fallback_targets(snapshot, node, requested)):
        raise RoutingError(403, f"The model {requested!r} is served only by providers that a policy "
                                f"does not allow.", code="provider_not_allowed", type_="permission_error")


def _fallback_targets(snapshot: ConfigSnapshot, node: Node, requested: str) -> list[Target]:
    """The targets of the fallback model, which a combo falls back to (selection/plan.py)."""
    fallback = snapshot.routing.fallback_model
    if not isinstance(node, ComboNode) or not fallback or fallback == requested:
        return []
    try:
        return targets(resolve(snapshot, fallback))
    except RoutingError:
        return []


def provider_allowed(policies: list[PolicySpec], target: Target) -> bool:
    return all(p.allow_providers is None or target.provider.id in p.allow_providers for p in policies)


def admit(snapshot: ConfigSnapshot, key_id: str, model: str) -> tuple[ApiKey | None, list[PolicySpec], str, Node]:
    """The checks every request passes first, in order: the key, the policies that apply to it,
    their model rewrites, model resolution and access. Raises RoutingError."""
    key = check_key(snapshot, key_id)
    policies = applicable(snapshot, key)
    requested = rewrite(policies, model)
    node = resolve(snapshot, requested)
    check_access(snapshot, key, policies, requested, node)
    return key, policies, requested, node
