"""Prices and cost arithmetic (pure: no I/O). Money is Decimal, never float, so that the sum of
stored costs equals the spend counters to the last nano-dollar."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

import yaml

ANY_PROVIDER = "*"
MILLION = Decimal(1_000_000)
NANO = Decimal("0.000000001")  # the precision of usage.cost_usd (numeric(20, 9))
_VERSION_SEPARATORS = ("-", "@", ":")
_MEMO_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Price:
    provider_type: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_per_mtok: Decimal | None = None  # None: cached input is billed at the input price

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> Decimal:
        """USD for one request. Counts follow OpenAI's meaning (the canonical one): input
        includes cached tokens and output includes reasoning tokens, so reasoning is billed at
        the output price and only the cached part of the input gets the cached price."""
        cached = min(max(cached_tokens, 0), max(input_tokens, 0))
        fresh = max(input_tokens, 0) - cached
        cached_price = self.input_per_mtok if self.cached_per_mtok is None else self.cached_per_mtok
        total = (fresh * self.input_per_mtok + cached * cached_price
                 + max(output_tokens, 0) * self.output_per_mtok) / MILLION
        return total.quantize(NANO, rounding=ROUND_HALF_UP)

    def as_json(self) -> dict[str, Any]:
        return {"providerType": self.provider_type, "model": self.model,
                "input": float(self.input_per_mtok), "output": float(self.output_per_mtok),
                "cached": None if self.cached_per_mtok is None else float(self.cached_per_mtok)}


class PriceBook:
    """Finds the price of (provider type, model) with the fallbacks real traffic needs: dated
    snapshots ("gpt-4o-2024-08-06" → "gpt-4o"), vendor-prefixed names from aggregators
    ("openai/gpt-4o"), and a model served by another provider type (OpenRouter, Together)."""

    def __init__(self, prices: Iterable[Price] = ()) -> None:
        self._exact: dict[tuple[str, str], Price] = {}
        self._memo: dict[tuple[str, str], Price | None] = {}  # fallbacks are resolved once
        self._by_model: dict[str, list[Price]] = {}
        for price in prices:
            self._exact[(price.provider_type, price.model)] = price
            self._by_model.setdefault(price.model, []).append(price)
        for entries in self._by_model.values():
            # Deterministic choice among types: '*' first, then alphabetical.
            entries.sort(key=lambda p: (p.provider_type != ANY_PROVIDER, p.provider_type))

    def __len__(self) -> int:
        return len(self._exact)

    def find(self, provider_type: str, model: str) -> Price | None:
        key = (provider_type, model)
        if key not in self._memo:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = self._find(provider_type, model)
        return self._memo[key]

    def _find(self, provider_type: str, model: str) -> Price | None:
        for name in _names_to_try(model):
            found = self._lookup(provider_type, name)
            if found is not None:
                return found
        for name in _names_to_try(model):
            found = self._longest_prefix(provider_type, name)
            if found is not None:
                return found
        return None

    def cost(self, provider_type: str, model: str, input_tokens: int, output_tokens: int,
             cached_tokens: int = 0) -> Decimal | None:
        """None when no price is known (the caller stores 0 and says so in a metric/log)."""
        price = self.find(provider_type, model)
        return None if price is None else price.cost(input_tokens, output_tokens, cached_tokens)

    def _lookup(self, provider_type: str, name: str) -> Price | None:
        exact = self._exact.get((provider_type, name)) or self._exact.get((ANY_PROVIDER, name))
        if exact is not None:
            return exact
        others = self._by_model.get(name)
        return others[0] if others else None

    def _longest_prefix(self, provider_type: str, name: str) -> Price | None:
        best: str | None = None
        for known in self._by_model:
            if (len(name) > len(known) and name.startswith(known)
                    and name[len(known)] in _VERSION_SEPARATORS
                    and (best is None or len(known) > len(best))):
                best = known
        return None if best is None else self._lookup(provider_type, best)


def _names_to_try(model: str) -> list[str]:
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    return names


def seed_prices() -> tuple[str, list[Price]]:
    """(version, prices) from the packaged pricing_seed.yaml."""
    text = (resources.files("omniroute.store") / "pricing_seed.yaml").read_text()
    data = yaml.safe_load(text) or {}
    prices = [
        Price(provider_type=str(provider_type), model=str(model),
              input_per_mtok=_decimal(entry.get("input")), output_per_mtok=_decimal(entry.get("output")),
              cached_per_mtok=None if entry.get("cached") is None else _decimal(entry["cached"]))
        for provider_type, models in (data.get("prices") or {}).items()
        for model, entry in (models or {}).items()]
    return str(data.get("version", "")), prices


def _decimal(value: Any) -> Decimal:
    # Through str: Decimal(0.1) would carry the binary float's error into every sum.
    return Decimal(str(value if value is not None else 0))


def to_nanos(cost: Decimal) -> int:
    """Integer nano-dollars: what the Redis spend counters add (INCRBY is exact; floats drift)."""
    return int((cost / NANO).to_integral_value(rounding=ROUND_HALF_UP))
