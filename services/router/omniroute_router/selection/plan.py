"""From a resolved tree to the ordered list of steps to try: each combo orders its own steps by
its strategy (with the shared state it needs), nested combos are ordered in place, and the global
fallback model comes last when a combo was named."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from omniroute.config.routing_spec import ComboSpec
from omniroute.config.snapshot import ConfigSnapshot
from omniroute_router.errors import RoutingError
from omniroute_router.selection import strategies
from omniroute_router.selection.accounts import Accounts
from omniroute_router.selection.combo_state import ComboState
from omniroute_router.selection.resolve import ComboNode, Node, Target, resolve

_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Step:
    target: Target
    combo: ComboSpec | None                 # the innermost combo: retries, delay, timeout
    path: tuple[tuple[str, str], ...] = ()  # (combo, step) from the root, to record who answered


async def plan(snapshot: ConfigSnapshot, node: Node, combos: ComboState, accounts: Accounts,
               requested: str) -> list[Step]:
    steps = await _flatten(node, None, (), combos, accounts)
    fallback = snapshot.routing.fallback_model
    if isinstance(node, ComboNode) and fallback and fallback != requested:
        try:
            steps += await _flatten(resolve(snapshot, fallback), None, (), combos, accounts)
        except RoutingError:
            pass  # a broken fallback must not hide the combo's own error
    return steps


async def _flatten(node: Node, combo: ComboSpec | None, path: tuple[tuple[str, str], ...],
                   combos: ComboState, accounts: Accounts) -> list[Step]:
    if isinstance(node, Target):
        return [Step(node, combo, path)]
    spec = node.combo
    facts = await _facts(node, combos, accounts)
    shared = await combos.shared(spec.name, spec.strategy)
    ordered: list[Step] = []
    for index in strategies.order(spec.strategy, facts, shared, _rng):
        child = node.steps[index]
        ordered += await _flatten(child, spec, (*path, (spec.name, child.name)), combos, accounts)
    return ordered


async def _facts(node: ComboNode, combos: ComboState, accounts: Accounts) -> list[strategies.StepFacts]:
    spec = node.combo
    weights = spec.weights or [1.0] * len(node.steps)
    used = await combos.used(spec.name) if spec.strategy in ("least-used", "p2c") else {}
    facts = []
    for weight, step in zip(weights, node.steps, strict=False):
        price = p50 = None
        unhealthy = 0.0
        if isinstance(step, Target):
            if spec.strategy == "cost-optimized":
                price = price_of(step.provider.settings, step.model)
            elif spec.strategy == "latency-optimized":
                p50 = await combos.p50_ms(step.provider.id)
            elif spec.strategy == "p2c":
                unhealthy = await accounts.unhealthy(step)
        facts.append(strategies.StepFacts(name=step.name, weight=weight, price=price, p50_ms=p50,
                                          used=used.get(step.name, 0), unhealthy=unhealthy))
    return facts


def price_of(settings: dict[str, Any], model: str) -> float | None:
    """Provider settings may carry `pricing: {model: {input: $/1M, output: $/1M}}` (a `*` entry
    covers the provider's other models) until the accounting pricing table is readable here."""
    pricing = settings.get("pricing")
    if not isinstance(pricing, dict):
        return None
    entry = pricing.get(model, pricing.get("*"))
    if not isinstance(entry, dict):
        return None
    try:
        return float(entry.get("input", 0)) + float(entry.get("output", 0))
    except (TypeError, ValueError):
        return None
