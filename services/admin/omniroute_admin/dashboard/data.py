"""The dashboard's views of the usage table (read through usage_queries; never on the gateway's
hot path): periods, the overview's series, breakdowns, CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from omniroute.store import usage_queries


@dataclass(frozen=True)
class Period:
    name: str
    span: timedelta
    bucket: timedelta
    label_format: str


PERIODS = {
    "1h": Period("1h", timedelta(hours=1), timedelta(minutes=5), "%H:%M"),
    "24h": Period("24h", timedelta(hours=24), timedelta(hours=1), "%H:00"),
    "7d": Period("7d", timedelta(days=7), timedelta(hours=6), "%a %Hh"),
    "30d": Period("30d", timedelta(days=30), timedelta(days=1), "%d %b"),
}
GROUPS = usage_queries.DASHBOARD_GROUPS


def period(name: str | None) -> Period:
    return PERIODS.get(name or "", PERIODS["24h"])


async def overview(conn: AsyncConnection[Any], chosen: Period) -> dict[str, Any]:
    since = datetime.now(UTC) - chosen.span
    totals = await usage_queries.totals_since(conn, since)
    bucket_s = int(chosen.bucket.total_seconds())
    by_slot = await usage_queries.slots_since(conn, since, bucket_s)
    first = int(since.timestamp()) // bucket_s + 1
    slots = list(range(first, first + int(chosen.span / chosen.bucket)))
    series = {
        "labels": [datetime.fromtimestamp(s * bucket_s, UTC).strftime(chosen.label_format) for s in slots],
        "requests": [float(by_slot[s]["requests"]) if s in by_slot else 0.0 for s in slots],
        "errors": [float(by_slot[s]["errors"]) if s in by_slot else 0.0 for s in slots],
        "tokens": [float(by_slot[s]["tokens"]) if s in by_slot else 0.0 for s in slots],
        "p95": [float(by_slot[s]["p95"]) if s in by_slot and by_slot[s]["p95"] is not None else None
                for s in slots],
    }
    return {"totals": totals, "series": series}


async def breakdown(conn: AsyncConnection[Any], chosen: Period, group: str,
                    within_teams: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """`within_teams`: a team admin's scope (Principal.team_scope)."""
    return await usage_queries.breakdown_since(conn, datetime.now(UTC) - chosen.span, group, within_teams)


def _cell(value: Any) -> Any:
    # A spreadsheet would run a cell starting with = + - @ as a formula: make it text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()
