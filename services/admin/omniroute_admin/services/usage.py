"""Prices (USD per million tokens) that accounting applies to usage."""

from __future__ import annotations

from typing import Any

from omniroute.store import pricing_repo
from omniroute.store.pricing import Price, seed_prices
from omniroute_admin.state import AdminState


async def pricing(state: AdminState, provider_type: str | None, model: str | None) -> dict[str, Any]:
    """The price list, optionally of one provider type and / or model."""
    async with state.pool.connection() as conn:
        prices = await pricing_repo.load(conn)
        if not prices:  # a fresh database before accounting ever ran: show the list prices
            await pricing_repo.seed(conn)
            prices = await pricing_repo.load(conn)
    rows = [p.as_json() for p in prices
            if (provider_type is None or p.provider_type == provider_type)
            and (model is None or p.model == model)]
    return {"unit": "USD per million tokens", "seedVersion": seed_prices()[0], "pricing": rows}


async def set_prices(state: AdminState, prices: list[Price]) -> None:
    """Upsert; accounting reloads its price book on the announcement."""
    async with state.pool.connection() as conn:
        for price in prices:
            await pricing_repo.upsert(conn, price)
    await state.announce("pricing")
