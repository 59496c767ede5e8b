"""The `pricing` table: seeded from pricing_seed.yaml, edited through the admin API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from omniroute.store.pricing import Price, PriceBook, seed_prices

_COLUMNS = ("provider_type, model, input_per_mtok, output_per_mtok, cached_per_mtok, "
            "cache_write_per_mtok, reasoning_per_mtok, per_image, per_audio_second, source_url")
_PRICED = _COLUMNS.split(", ")[2:]  # every column but the key
_SET = ", ".join(f"{column} = EXCLUDED.{column}" for column in _PRICED)
_PLACEHOLDERS = ", ".join(["%s"] * len(_COLUMNS.split(", ")))


def _row(price: Price) -> tuple[Any, ...]:
    return (price.provider_type, price.model, price.input_per_mtok, price.output_per_mtok,
            price.cached_per_mtok, price.cache_write_per_mtok, price.reasoning_per_mtok,
            Jsonb({key: str(value) for key, value in price.per_image.items()}),
            price.per_audio_second, price.source)


async def seed(conn: AsyncConnection[Any]) -> int:
    """Insert the packaged list prices. Rows an admin edited (source = 'admin') are never
    touched; seeded rows follow a newer seed file. Safe from several processes at once."""
    _, prices = seed_prices()
    current = ", ".join(f"pricing.{column}" for column in _PRICED)
    seeded = ", ".join(f"EXCLUDED.{column}" for column in _PRICED)
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(
            f"INSERT INTO pricing ({_COLUMNS}, source) VALUES ({_PLACEHOLDERS}, 'seed') "
            f"ON CONFLICT (provider_type, model) DO UPDATE SET {_SET}, updated_at = now() "
            f"WHERE pricing.source = 'seed' AND ({current}) IS DISTINCT FROM ({seeded})",
            [_row(price) for price in prices])
        return max(cursor.rowcount, 0)


async def load(conn: AsyncConnection[Any]) -> list[Price]:
    cursor = await conn.execute(f"SELECT {_COLUMNS} FROM pricing ORDER BY provider_type, model")
    return [Price(provider_type=row[0], model=row[1], input_per_mtok=Decimal(row[2]),
                  output_per_mtok=Decimal(row[3]), cached_per_mtok=_optional(row[4]),
                  cache_write_per_mtok=_optional(row[5]), reasoning_per_mtok=_optional(row[6]),
                  per_image={str(key): Decimal(str(value)) for key, value in (row[7] or {}).items()},
                  per_audio_second=Decimal(row[8]), source=row[9])
            for row in await cursor.fetchall()]


def _optional(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


async def load_book(conn: AsyncConnection[Any]) -> PriceBook:
    return PriceBook(await load(conn))


async def upsert(conn: AsyncConnection[Any], price: Price) -> None:
    async with conn.transaction():
        await conn.execute(
            f"INSERT INTO pricing ({_COLUMNS}, source) VALUES ({_PLACEHOLDERS}, 'admin') "
            f"ON CONFLICT (provider_type, model) DO UPDATE SET {_SET}, source = 'admin', "
            "updated_at = now()", _row(price))
