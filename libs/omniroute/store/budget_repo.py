"""Budgets (the `api_keys.budget` JSON, so that every router's snapshot carries them) and the
Postgres side of spend: per-key sums for the current periods, to rebuild Redis counters."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from omniroute.shared_state.budget import NANOS_PER_USD, PERIODS, Budget, period_bounds, team_owner


async def set_budget(conn: AsyncConnection[Any], key_id: str, budget: Budget | None) -> bool:
    """False when the key does not exist. None removes the budget."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE api_keys SET budget = %s, updated_at = now() WHERE id = %s",
            (Jsonb(budget.as_json()) if budget else None, key_id))
        return cursor.rowcount > 0


async def list_budgets(conn: AsyncConnection[Any], key_id: str | None = None,
                       within_teams: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """[{keyId, name, budget (raw JSON)}] for keys that have a budget (or the one key asked);
    `within_teams`: keys of those teams only (a team admin's scope)."""
    query = "SELECT id, name, budget FROM api_keys WHERE "
    query += "id = %s" if key_id else "budget IS NOT NULL"
    params: list[Any] = [key_id] if key_id else []
    if within_teams is not None:
        query += " AND team_id = ANY(%s)"
        params.append(list(within_teams))
    cursor = await conn.execute(query + " ORDER BY name", params)
    return [{"keyId": row[0], "name": row[1], "budget": row[2]} for row in await cursor.fetchall()]


async def team_of_key(conn: AsyncConnection[Any], key_id: str) -> str:
    """The team a key belongs to ("" for no such key)."""
    cursor = await conn.execute("SELECT team_id FROM api_keys WHERE id = %s", (key_id,))
    row = await cursor.fetchone()
    return str(row[0]) if row else ""


async def budgets_of(conn: AsyncConnection[Any], key_ids: list[str]) -> list[dict[str, Any]]:
    """[{keyId, name, budget (raw JSON)}] for those of these keys that have a budget."""
    cursor = await conn.execute(
        "SELECT id, name, budget FROM api_keys WHERE id = ANY(%s) AND budget IS NOT NULL", (key_ids,))
    return [{"keyId": row[0], "name": row[1], "budget": row[2]} for row in await cursor.fetchall()]


async def period_totals(conn: AsyncConnection[Any], now: datetime | None = None
                        ) -> dict[tuple[str, str, datetime], int]:
    """(owner, period, period start) → nano-dollars spent in the current daily, weekly and
    monthly periods, per key (owner: the key id) and per team (owner: team_owner(team id)), in
    one scan of the rows since the earliest of those starts."""
    now = now or datetime.now(UTC)
    bounds = {period: period_bounds(period, now) for period in PERIODS}
    earliest = min(start for start, _ in bounds.values())
    sums = ", ".join("sum(cost_usd) FILTER (WHERE started_at >= %s AND started_at < %s)"
                     for _ in PERIODS)
    params: list[Any] = [value for period in PERIODS for value in bounds[period]]
    # GROUPING SETS: one scan gives the per-key and the per-team sums (a team's row has key NULL).
    cursor = await conn.execute(
        f"SELECT key_id, team_id, {sums} FROM usage WHERE started_at >= %s AND key_id <> '' "
        "GROUP BY GROUPING SETS ((key_id), (team_id))", [*params, earliest])
    totals: dict[tuple[str, str, datetime], int] = {}
    for row in await cursor.fetchall():
        if row[0] is not None:
            owner = str(row[0])
        elif row[1]:
            owner = team_owner(str(row[1]))
        else:
            continue  # rows without a team (none since 0011) count for their keys only
        for index, period in enumerate(PERIODS):
            spent: Decimal | None = row[index + 2]
            if spent:
                totals[(owner, period, bounds[period][0])] = int(spent * NANOS_PER_USD)
    return totals
