"""Combo strategies: the order in which a combo's steps are tried. Pure: everything a strategy
needs (shared counters, prices, latencies, health) is gathered beforehand into StepFacts, so each
strategy is a few lines and unit-testable."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepFacts:
    name: str
    weight: float = 1.0
    price: float | None = None       # per 1M tokens (input + output); None = unknown
    p50_ms: float | None = None      # recent median latency; None = no samples
    used: int = 0                    # times this combo picked the step (shared counter)
    unhealthy: float = 0.0           # 0 = healthy; grows with open breakers / cooldowns


@dataclass(frozen=True, slots=True)
class Shared:
    """Combo state shared by every replica (read from Redis before ordering)."""

    counter: int = 0        # round-robin: a shared, incremented counter
    last_good: str = ""     # lkgp: the step that answered last
    current: str = ""       # fill-first: the step in use until it fails


Order = list[int]
_Strategy = Callable[[Sequence[StepFacts], Shared, random.Random], Order]


def _priority(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    return list(range(len(steps)))


def _weighted(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    """Weighted sampling without replacement: the first step by weight, then the rest."""
    # Efraimidis-Spirakis keys: u^(1/w), largest first.
    keyed = [(rng.random() ** (1.0 / s.weight) if s.weight > 0 else -1.0, i) for i, s in enumerate(steps)]
    return [i for _, i in sorted(keyed, reverse=True)]


def _round_robin(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    start = shared.counter % len(steps)
    return [(start + i) % len(steps) for i in range(len(steps))]


def _fill_first(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    """Stay on the current step until it fails or hits its limit, then move on to the NEXT one in
    the list (and stay there), wrapping around: the steps are used up one after the other.
    Unlike lkgp, which falls back from the last good step to the list's first."""
    names = [s.name for s in steps]
    start = names.index(shared.current) if shared.current in names else 0
    return [(start + i) % len(steps) for i in range(len(steps))]


def _random(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    order = list(range(len(steps)))
    rng.shuffle(order)
    return order


def _p2c(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    """Power of two choices: two at random, the healthier (then less used) first."""
    order = _random(steps, shared, rng)
    if len(order) >= 2:
        a, b = order[0], order[1]
        if (steps[b].unhealthy, steps[b].used) < (steps[a].unhealthy, steps[a].used):
            order[0], order[1] = b, a
    return order


def _least_used(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    return sorted(range(len(steps)), key=lambda i: (steps[i].used, i))


def _cost(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    return sorted(range(len(steps)), key=lambda i: (_or_inf(steps[i].price), i))


def _latency(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    return sorted(range(len(steps)), key=lambda i: (_or_inf(steps[i].p50_ms), i))


def _lkgp(steps: Sequence[StepFacts], shared: Shared, rng: random.Random) -> Order:
    """The step that answered last, then the others in list order."""
    order = list(range(len(steps)))
    names = [s.name for s in steps]
    if shared.last_good in names:
        good = names.index(shared.last_good)
        order.remove(good)
        order.insert(0, good)
    return order


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


STRATEGIES: dict[str, _Strategy] = {
    "priority": _priority, "weighted": _weighted, "round-robin": _round_robin,
    "fill-first": _fill_first, "p2c": _p2c, "random": _random, "least-used": _least_used,
    "cost-optimized": _cost, "latency-optimized": _latency, "lkgp": _lkgp,
}


def order(strategy: str, steps: Sequence[StepFacts], shared: Shared,
          rng: random.Random | None = None) -> Order:
    """Indexes of `steps` in the order to try them."""
    if not steps:
        return []
    return STRATEGIES.get(strategy, _priority)(steps, shared, rng or random.Random())
