"""Cost arithmetic against the pricing table, and the price lookup's fallbacks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from omniroute.store.pricing import Price, PriceBook, seed_prices, to_nanos

GPT4O = Price("openai", "gpt-4o", Decimal("2.50"), Decimal("10.00"), Decimal("1.25"))


def test_cost_bills_cached_input_at_the_cached_price_and_the_rest_at_list() -> None:
    # 800 fresh input at $2.50/M + 200 cached at $1.25/M + 500 output at $10/M
    assert GPT4O.cost(1000, 500, 200) == Decimal("0.007250000")


def test_cost_without_a_cached_price_bills_cached_as_input() -> None:
    price = Price("x", "m", Decimal("3"), Decimal("15"))
    assert price.cost(1_000_000, 0, 400_000) == Decimal("3.000000000")
    assert price.cost(0, 1_000_000) == Decimal("15.000000000")


def test_cost_is_exact_to_the_nano_dollar_and_never_negative() -> None:
    cheap = Price("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.60"), Decimal("0.075"))
    assert cheap.cost(1, 1) == Decimal("0.000000750")
    assert to_nanos(cheap.cost(1, 1)) == 750
    assert cheap.cost(-5, -5, 99) == Decimal(0)
    # cached larger than input (a provider's odd report) is capped at the input
    assert cheap.cost(10, 0, 50) == Decimal("0.000000750")


@pytest.mark.parametrize(("provider_type", "model", "expected"), [
    ("openai", "gpt-4o", "gpt-4o"),
    ("openai", "gpt-4o-2024-08-06", "gpt-4o"),             # dated snapshot
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),   # longest prefix wins
    ("openrouter", "openai/gpt-4o", "gpt-4o"),             # vendor prefix, other provider type
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("openai", "gpt-4", None),                             # a prefix of a known name is not it
    ("openai", "unknown-model", None),
])
def test_lookup_fallbacks(provider_type: str, model: str, expected: str | None) -> None:
    book = PriceBook([GPT4O, Price("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.6")),
                      Price("anthropic", "claude-sonnet-4-5", Decimal(3), Decimal(15))])
    found = book.find(provider_type, model)
    assert (found.model if found else None) == expected


def test_provider_specific_price_beats_another_types_and_any_provider() -> None:
    book = PriceBook([Price("*", "llama-3", Decimal(1), Decimal(1)),
                      Price("groq", "llama-3", Decimal("0.5"), Decimal("0.5")),
                      Price("together", "llama-3", Decimal("0.9"), Decimal("0.9"))])
    assert book.find("groq", "llama-3").provider_type == "groq"  # type: ignore[union-attr]
    assert book.find("fireworks", "llama-3").provider_type == "*"  # type: ignore[union-attr]


def test_seed_file_has_the_major_models_with_sane_prices() -> None:
    version, prices = seed_prices()
    assert version
    book = PriceBook(prices)
    for provider_type, model in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
                                 ("openai", "o3"), ("openai", "o4-mini"),
                                 ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-opus-4-1"),
                                 ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-pro"),
                                 ("gemini", "gemini-2.5-flash")]:
        price = book.find(provider_type, model)
        assert price is not None, model
        assert Decimal(0) < price.input_per_mtok <= price.output_per_mtok
        assert price.cached_per_mtok is None or price.cached_per_mtok < price.input_per_mtok
