"""The `pricing` table: seeded from pricing_seed.yaml, edited through the admin API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from omniroute.store.pricing import Price, PriceBook, seed_prices

_COLUMNS = "provider_type, model, input_per_mtok, output_per_mtok, cached_per_mtok"


async def seed(conn: AsyncConnection[Any]) -> int:
    """Insert the packaged list prices. Rows an admin edited (source = 'admin') are never
    touched; seeded rows follow a newer seed file. Safe from several processes at once."""
    _, prices = seed_prices()
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(
            f"INSERT INTO pricing ({_COLUMNS}, source) VALUES (%s, %s, %s, %s, %s, 'seed') "
            "ON CONFLICT (provider_type, model) DO UPDATE SET input_per_mtok = EXCLUDED.input_per_mtok, "
            "output_per_mtok = EXCLUDED.output_per_mtok, cached_per_mtok = EXCLUDED.cached_per_mtok, "
            "updated_at = now() WHERE pricing.source = 'seed' AND (pricing.input_per_mtok, "
            "pricing.output_per_mtok, pricing.cached_per_mtok) IS DISTINCT FROM (EXCLUDED.input_per_mtok, "
            "EXCLUDED.output_per_mtok, EXCLUDED.cached_per_mtok)",
            [(p.provider_type, p.model, p.input_per_mtok, p.output_per_mtok, p.cached_per_mtok)
             for p in prices])
        return max(cursor.rowcount, 0)


async def load(conn: AsyncConnection[Any]) -> list[Price]:
    cursor = await conn.execute(f"SELECT {_COLUMNS} FROM pricing ORDER BY provider_type, model")
    return [Price(provider_type=row[0], model=row[1], input_per_mtok=Decimal(row[2]),
                  output_per_mtok=Decimal(row[3]),
                  cached_per_mtok=None if row[4] is None else Decimal(row[4]))
            for row in await cursor.fetchall()]


async def load_book(conn: AsyncConnection[Any]) -> PriceBook:
    return PriceBook(await load(conn))


async def upsert(conn: AsyncConnection[Any], price: Price) -> None:
    async with conn.transaction():
        await conn.execute(
            f"INSERT INTO pricing ({_COLUMNS}, source) VALUES (%s, %s, %s, %s, %s, 'admin') "
            "ON CONFLICT (provider_type, model) DO UPDATE SET input_per_mtok = EXCLUDED.input_per_mtok, "
            "output_per_mtok = EXCLUDED.output_per_mtok, cached_per_mtok = EXCLUDED.cached_per_mtok, "
            "source = 'admin', updated_at = now()",
            (price.provider_type, price.model, price.input_per_mtok, price.output_per_mtok,
             price.cached_per_mtok))

