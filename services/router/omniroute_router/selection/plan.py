"""From a resolved tree to the ordered list of steps to try: each combo orders its own steps by
its strategy (with the shared state it needs), nested combos are ordered in place, and the global
fallback model comes last when a combo was named."""

from __future__ import annotations

import random
from dataclasses import dataclass

from omniroute.config.routing_spec import ComboSpec
from omniroute.config.snapshot import ConfigSnapshot
from omniroute.store.pricing import PriceBook
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
    steps = await _flatten(snapshot, node, None, (), combos, accounts)
    fallback = snapshot.routing.fallback_model
    if isinstance(node, ComboNode) and fallback and fallback != requested:
        try:
            steps += await _flatten(snapshot, resolve(snapshot, fallback), None, (), combos, accounts)
        except RoutingError:
            pass  # a broken fallback must not hide the combo's own error
    return steps


async def _flatten(snapshot: ConfigSnapshot, node: Node, combo: ComboSpec | None,
                   path: tuple[tuple[str, str], ...], combos: ComboState, accounts: Accounts) -> list[Step]:
    if isinstance(node, Target):
        return [Step(node, combo, path)]
    spec = node.combo
    facts = await _facts(snapshot, node, combos, accounts)
    shared = await combos.shared(spec.name, spec.strategy)
    ordered: list[Step] = []
    for index in strategies.order(spec.strategy, facts, shared, _rng):
        child = node.steps[index]
        ordered += await _flatten(snapshot, child, spec, (*path, (spec.name, child.name)), combos, accounts)
    return ordered


async def _facts(snapshot: ConfigSnapshot, node: ComboNode, combos: ComboState,
                 accounts: Accounts) -> list[strategies.StepFacts]:
    spec = node.combo
    weights = spec.weights or [1.0] * len(node.steps)
    used = await combos.used(spec.name) if spec.strategy in ("least-used", "p2c") else {}
    facts = []
    for weight, step in zip(weights, node.steps, strict=False):
        price = p50 = None
        unhealthy = 0.0
        if isinstance(step, Target):
            if spec.strategy == "cost-optimized":
                price = price_of(snapshot.prices, step.provider.type, step.model)
            elif spec.strategy == "latency-optimized":
                p50 = await combos.p50_ms(step.provider.id)
            elif spec.strategy == "p2c":
                unhealthy = await accounts.unhealthy(step)
        facts.append(strategies.StepFacts(name=step.name, weight=weight, price=price, p50_ms=p50,
                                          used=used.get(step.name, 0), unhealthy=unhealthy))
    return facts


def price_of(prices: PriceBook, provider_type: str, model: str) -> float | None:
    """$ per 1M input + output tokens from the pricing table (/api/pricing, with its fallbacks:
    dated names, aggregators' prefixes); None when the table has no price for the model."""
    price = prices.find(provider_type, model)
    return None if price is None else float(price.input_per_mtok + price.output_per_mtok)
