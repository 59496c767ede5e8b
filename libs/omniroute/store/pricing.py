"""Prices and cost arithmetic (pure: no I/O). Money is Decimal, never float, so that the sum of
stored costs equals the spend counters to the last nano-dollar."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from omniroute.settings import Settings

ANY_PROVIDER = "*"
MILLION = Decimal(1_000_000)
NANO = Decimal("0.000000001")  # the precision of usage.cost_usd (numeric(20, 9))
_VERSION_SEPARATORS = ("-", "@", ":")
_MEMO_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Units:
    """What one request consumed, in every unit a price can name. Token counts follow OpenAI's
    meaning (the canonical one): input includes cached and cache-written tokens, output includes
    reasoning tokens. Embedding tokens are input tokens of an embedding model."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    images: int = 0
    image_size: str = ""
    image_quality: str = ""
    audio_seconds: float = 0.0

    @classmethod
    def of(cls, usage: Any) -> Units:
        """From an omniroute.v1 Usage message (or anything with its fields)."""
        return cls(**{item.name: getattr(usage, item.name) for item in fields(cls)})


@dataclass(frozen=True, slots=True)
class Price:
    provider_type: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_per_mtok: Decimal | None = None  # cache read; None: billed at the input price
    cache_write_per_mtok: Decimal | None = None  # None: billed at the input price
    reasoning_per_mtok: Decimal | None = None  # None: billed at the output price
    # USD per image by "size/quality", "size", "*/quality" or "*" (the most specific wins).
    per_image: Mapping[str, Decimal] = field(default_factory=dict)
    per_audio_second: Decimal = Decimal(0)
    source: str = ""  # where the list price was published (a URL), or "" for an admin's own

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> Decimal:
        """USD for tokens only (see charge)."""
        return self.charge(Units(input_tokens, output_tokens, cached_tokens))

    def charge(self, units: Units) -> Decimal:
        """USD for one request: the one price function accounting records and the router
        reserves and settles with. Only the cached / cache-written part of the input and the
        reasoning part of the output get their own prices; images and audio seconds add theirs."""
        total_in = max(units.input_tokens, 0)
        cached = min(max(units.cached_tokens, 0), total_in)
        written = min(max(units.cache_write_tokens, 0), total_in - cached)
        fresh = total_in - cached - written
        output = max(units.output_tokens, 0)
        reasoning = min(max(units.reasoning_tokens, 0), output)
        tokens = (fresh * self.input_per_mtok
                  + cached * _or(self.cached_per_mtok, self.input_per_mtok)
                  + written * _or(self.cache_write_per_mtok, self.input_per_mtok)
                  + (output - reasoning) * self.output_per_mtok
                  + reasoning * _or(self.reasoning_per_mtok, self.output_per_mtok)) / MILLION
        media = (max(units.images, 0) * self.image_price(units.image_size, units.image_quality)
                 + Decimal(str(max(units.audio_seconds, 0.0))) * self.per_audio_second)
        return (tokens + media).quantize(NANO, rounding=ROUND_HALF_UP)

    def image_price(self, size: str, quality: str) -> Decimal:
        """One image's price: the most specific of "size/quality", "size", "*/quality", "*"
        ("*": the provider's default size and quality, for an image asked without them); else
        the dearest listed, so a size the table does not know never costs less than one it does."""
        for key in (f"{size}/{quality}", size, f"*/{quality}", "*"):
            if key in self.per_image:
                return self.per_image[key]
        return max(self.per_image.values(), default=Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {"providerType": self.provider_type, "model": self.model,
                "input": float(self.input_per_mtok), "output": float(self.output_per_mtok),
                "cached": _float(self.cached_per_mtok), "cacheWrite": _float(self.cache_write_per_mtok),
                "reasoning": _float(self.reasoning_per_mtok),
                "perImage": {key: float(value) for key, value in self.per_image.items()},
                "perAudioSecond": float(self.per_audio_second), "source": self.source}


def _or(price: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if price is None else price


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class DefaultPrice:
    """What a model without a price is charged (Settings OMNIROUTE_DEFAULT_PRICE_*): never $0
    by silence; accounting counts such requests in omniroute.pricing.unpriced."""

    input_per_mtok: Decimal = Decimal(0)
    output_per_mtok: Decimal = Decimal(0)
    per_image: Decimal = Decimal(0)
    per_audio_second: Decimal = Decimal(0)

    def price(self, provider_type: str, model: str) -> Price:
        return Price(provider_type, model, self.input_per_mtok, self.output_per_mtok,
                     per_image={"*": self.per_image} if self.per_image else {},
                     per_audio_second=self.per_audio_second, source="default")


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
        """None when no price is known (tokens only; see charge)."""
        price = self.find(provider_type, model)
        return None if price is None else price.cost(input_tokens, output_tokens, cached_tokens)

    def price_or_default(self, provider_type: str, model: str, default: DefaultPrice) -> tuple[Price, bool]:
        """(the model's price, True) or (the configured default's, False)."""
        price = self.find(provider_type, model)
        return (price, True) if price is not None else (default.price(provider_type, model), False)

    def charge(self, provider_type: str, model: str, units: Units,
               default: DefaultPrice) -> tuple[Decimal, bool]:
        """(USD, priced): the cost of one request, at the configured default when the model has
        no price (priced False: count it). Accounting and the router both price through this."""
        price, priced = self.price_or_default(provider_type, model, default)
        return price.charge(units), priced

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
    sources: dict[str, str] = data.get("sources") or {}
    return str(data.get("version", "")), [
        _seed_price(str(provider_type), str(model), entry, sources)
        for provider_type, models in (data.get("prices") or {}).items()
        for model, entry in (models or {}).items()]


def _seed_price(provider_type: str, model: str, entry: dict[str, Any], sources: dict[str, str]) -> Price:
    source = str(entry.get("source") or sources.get(provider_type, ""))
    return Price(provider_type=provider_type, model=model,
                 input_per_mtok=_decimal(entry.get("input")), output_per_mtok=_decimal(entry.get("output")),
                 cached_per_mtok=_optional(entry.get("cached")),
                 cache_write_per_mtok=_optional(entry.get("cache_write")),
                 reasoning_per_mtok=_optional(entry.get("reasoning")),
                 per_image={str(key): _decimal(value) for key, value in (entry.get("per_image") or {}).items()},
                 per_audio_second=_decimal(entry.get("per_audio_second")),
                 source=sources.get(source, source))


def _optional(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value)


def _decimal(value: Any) -> Decimal:
    # Through str: Decimal(0.1) would carry the binary float's error into every sum.
    return Decimal(str(value if value is not None else 0))


def to_nanos(cost: Decimal) -> int:
    """Integer nano-dollars: what the Redis spend counters add (INCRBY is exact; floats drift)."""
    return int((cost / NANO).to_integral_value(rounding=ROUND_HALF_UP))


def default_price(settings: Settings) -> DefaultPrice:
    """The configured charge of a model without a price (OMNIROUTE_DEFAULT_PRICE_*)."""
    return DefaultPrice(input_per_mtok=_decimal(settings.default_price_input_per_mtok),
                        output_per_mtok=_decimal(settings.default_price_output_per_mtok),
                        per_image=_decimal(settings.default_price_per_image),
                        per_audio_second=_decimal(settings.default_price_per_audio_second))
