"""Cost arithmetic against the pricing table, and the price lookup's fallbacks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from omniroute.catalog import PROVIDER_TYPES
from omniroute.settings import Settings
from omniroute.store.pricing import DefaultPrice, Price, PriceBook, Units, default_price, seed_prices, to_nanos

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


def test_charge_prices_every_token_kind_at_its_own_price() -> None:
    price = Price("anthropic", "claude", Decimal(3), Decimal(15), cached_per_mtok=Decimal("0.3"),
                  cache_write_per_mtok=Decimal("3.75"), reasoning_per_mtok=Decimal(20))
    # 1000 input of which 200 cache reads and 100 cache writes; 500 output of which 300 reasoning
    units = Units(input_tokens=1000, output_tokens=500, cached_tokens=200, cache_write_tokens=100,
                  reasoning_tokens=300)
    expected = (700 * 3 + 200 * Decimal("0.3") + 100 * Decimal("3.75") + 200 * 15 + 300 * 20) / 1_000_000
    assert price.charge(units) == expected.quantize(Decimal("0.000000001"))
    # Without their own prices, cache writes are input and reasoning is output.
    plain = Price("x", "m", Decimal(3), Decimal(15))
    assert plain.charge(units) == plain.cost(1000, 500)


def test_embedding_tokens_are_the_input_price_of_an_embedding_model() -> None:
    embed = Price("openai", "text-embedding-3-small", Decimal("0.02"), Decimal(0))
    assert embed.charge(Units(input_tokens=1_000_000)) == Decimal("0.020000000")


def test_images_are_priced_by_size_and_quality() -> None:
    dalle = Price("openai", "dall-e-3", Decimal(0), Decimal(0), per_image={
        "*": Decimal("0.04"), "1024x1024/hd": Decimal("0.08"), "1792x1024": Decimal("0.08"),
        "1792x1024/hd": Decimal("0.12")})
    assert dalle.charge(Units(images=2, image_size="1024x1024", image_quality="hd")) == Decimal("0.16")
    assert dalle.charge(Units(images=1, image_size="1792x1024", image_quality="standard")) == Decimal("0.08")
    assert dalle.charge(Units(images=3)) == Decimal("0.12")  # the provider's default size
    no_default = Price("x", "img", Decimal(0), Decimal(0), per_image={"512x512": Decimal("0.01"),
                                                                      "1024x1024": Decimal("0.02")})
    assert no_default.image_price("4096x4096", "") == Decimal("0.02")  # unknown: the dearest


def test_audio_is_priced_per_second() -> None:
    whisper = Price("openai", "whisper-1", Decimal(0), Decimal(0), per_audio_second=Decimal("0.0001"))
    assert whisper.charge(Units(audio_seconds=90.5)) == Decimal("0.009050000")


def test_a_model_without_a_price_is_charged_the_default() -> None:
    default = DefaultPrice(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15),
                           per_image=Decimal("0.08"), per_audio_second=Decimal("0.0002"))
    book = PriceBook([GPT4O])
    assert book.charge("openai", "gpt-4o", Units(1000, 500, 200), default) == (GPT4O.cost(1000, 500, 200), True)
    cost, priced = book.charge("openai", "mystery", Units(input_tokens=1_000_000, images=1, audio_seconds=10),
                               default)
    assert (cost, priced) == (Decimal("3.082"), False)
    assert default_price(Settings(env="unit")).input_per_mtok > 0  # never $0 by default


def test_the_seed_prices_every_model_of_the_catalog_and_names_its_source() -> None:
    book = PriceBook(seed_prices()[1])
    for type_name, provider_type in PROVIDER_TYPES.items():
        for kind, models in provider_type.models.items():
            for model in models:
                price = book.find(type_name, model)
                assert price is not None, (type_name, kind, model)
                assert price.source.startswith("https://"), (type_name, model)
                if kind == "image":
                    assert price.per_image, model
                if kind == "audio":
                    assert price.per_audio_second > 0, model
