"""Spend budgets per API key and per team: Redis counters that every router reads and accounting
writes (a team's under the owner `team:<id>`, counting the spend of every key of the team).

Counters hold integer nano-dollars per (key, period, period start), so INCRBY is exact and
their sum equals the Postgres `usage.cost_usd` sum. Periods are calendar periods (day, ISO week
from Monday, month) in the configured time zone (OMNIROUTE_BUDGET_TIMEZONE, an IANA name, UTC by
default; one zone for every process, so that routers, accounting and the admin name the same
counter); an event counts in the period of its `started_at`.

Exactly once, with several accounting replicas:
- Accounting adds a request's cost inside the same transaction that inserts its row, after the
  INSERT … RETURNING said the row is new and before COMMIT. So Redis is never behind a committed
  row (a crash between the two leaves Redis ahead, never behind).
- A per-request "counted" marker (SET NX in the same Lua script) stops a second addition when
  that transaction rolled back and the event comes again; accounting deletes the markers after
  the commit, so they live only as long as a batch is in doubt.
- `rebuild` (Postgres is the truth) raises each counter to the Postgres sum and never lowers
  it: after Redis lost data the counters come back, and a rebuild racing live traffic cannot
  erase or double a request counted meanwhile.

Reservations (omniroute.shared_state.budget_holds): the router holds each request's worst-case cost
against the key's counter before dispatch, lowers the hold to the real cost when the answer ends
and drops it when the request failed. Only accounting adds spend: the script below drops the
request's hold in the same step that adds its cost, so a request's cost is held or spent, never
both and never neither while its hold lives.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis.asyncio as redis

from omniroute.settings import Settings, budget_timezone

PERIODS = ("daily", "weekly", "monthly")
NANOS_PER_USD = 1_000_000_000
_KEEP_AFTER_PERIOD = timedelta(days=8)  # a closed period's counter stays readable a while
COUNTED_TTL_S = 86_400  # how long an in-doubt batch's markers guard against a second count
DEFAULT_ALERT_AT = (0.5, 0.8, 1.0)


class KeyWithBudget(Protocol):
    """What check_budget needs of an API key: omniroute.config.snapshot.ApiKey fits."""

    @property
    def id(self) -> str: ...

    @property
    def budget(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Budget:
    limit_usd: Decimal
    period: str = "monthly"
    warn_at: float = 0.8
    # Spend shares that send a budget alert once per period each (omniroute.alerts).
    alert_at: tuple[float, ...] = DEFAULT_ALERT_AT

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Budget | None:
        """From the stored JSON ({"limit", "period", "warnAt"}); None when there is no usable
        budget (absent, or a limit that is not a non-negative number)."""
        if not raw:
            return None
        try:
            limit = Decimal(str(raw.get("limit", raw.get("limit_usd"))))
        except (InvalidOperation, ValueError):
            return None
        if not limit.is_finite() or limit < 0:
            return None
        period = str(raw.get("period") or "monthly")
        if period not in PERIODS:
            return None
        warn_at = float(raw.get("warnAt", raw.get("warn_at", 0.8)) or 0.8)
        return cls(limit_usd=limit, period=period, warn_at=min(max(warn_at, 0.0), 1.0),
                   alert_at=parse_alert_at(raw.get("alertAt", DEFAULT_ALERT_AT)))

    def as_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"limit": float(self.limit_usd), "period": self.period,
                                  "warnAt": self.warn_at}
        if self.alert_at != DEFAULT_ALERT_AT:  # the default goes unsaid, as in earlier rows
            stored["alertAt"] = list(self.alert_at)
        return stored


def parse_alert_at(raw: Any) -> tuple[float, ...]:
    """Alert thresholds as sorted distinct shares in (0, 1]; anything unusable is left out."""
    values: set[float] = set()
    for item in raw if isinstance(raw, list | tuple) else ():
        try:
            share = float(item)
        except (TypeError, ValueError):
            continue
        if 0 < share <= 1:
            values.add(round(share, 4))
    return tuple(sorted(values))


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    key_id: str
    budget: Budget | None
    spent_usd: Decimal
    period_start: datetime | None = None
    period_end: datetime | None = None

    @property
    def exhausted(self) -> bool:
        """True once spend reached the limit: the request must be refused."""
        return self.budget is not None and self.spent_usd >= self.budget.limit_usd

    @property
    def warning(self) -> bool:
        """Past the warning threshold (e.g. 80 %) but not yet exhausted."""
        return (self.budget is not None and not self.exhausted
                and self.spent_usd >= self.budget.limit_usd * Decimal(str(self.budget.warn_at)))

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.budget is None else max(self.budget.limit_usd - self.spent_usd, Decimal(0))

    def retry_after_s(self, now: datetime | None = None) -> int:
        """Seconds until the period resets (for a Retry-After header)."""
        if self.period_end is None:
            return 0
        return max(0, math.ceil((self.period_end - (now or datetime.now(UTC))).total_seconds()))

    @property
    def message(self) -> str:
        if self.budget is None:
            return ""
        reset = f" It resets at {self.period_end:%Y-%m-%d %H:%M %Z}." if self.period_end else ""
        return (f"Budget exhausted: API key {self.key_id} has spent ${self.spent_usd:.2f} of its "
                f"${self.budget.limit_usd:.2f} {self.budget.period} budget.{reset}")

    def as_json(self) -> dict[str, Any]:
        limit = ({**self.budget.as_json(), "alertAt": list(self.budget.alert_at)} if self.budget
                 else {"limit": None})
        return {"keyId": self.key_id, **limit,
                "spent": float(self.spent_usd),
                "remaining": None if self.remaining_usd is None else float(self.remaining_usd),
                "exhausted": self.exhausted, "warning": self.warning,
                "periodStart": self.period_start.isoformat() if self.period_start else None,
                "periodEnd": self.period_end.isoformat() if self.period_end else None}


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def budget_zone() -> ZoneInfo:
    """The budget periods' time zone (Settings.budget_timezone: OMNIROUTE_BUDGET_TIMEZONE)."""
    return _zone(budget_timezone() or "UTC")


def period_bounds(period: str, at: datetime, zone: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the calendar period that contains `at`, in the budget time zone: local
    midnights (a day across a DST change is 23 or 25 hours long), as aware datetimes of that zone."""
    zone = zone or budget_zone()
    at = at.astimezone(zone)
    day = datetime(at.year, at.month, at.day, tzinfo=zone)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else \
            start.replace(month=start.month + 1)
        return start, end
    raise ValueError(f"unknown budget period {period!r}")


def spend_key(env: str, key_id: str, period: str, start: datetime) -> str:
    return f"{env}:budget:spend:{key_id}:{period}:{start:%Y%m%d}"


def counted_key(env: str, request_id: str) -> str:
    return f"{env}:budget:counted:{request_id}"


def holds_key(env: str, key_id: str) -> str:
    """Hash: request id → held nano-dollars, and TOTAL_FIELD → their sum."""
    return f"{env}:budget:holds:{key_id}"


def hold_deadlines_key(env: str, key_id: str) -> str:
    """Sorted set: request id scored by the epoch milliseconds its hold expires at."""
    return f"{env}:budget:hold-deadlines:{key_id}"


TOTAL_FIELD = "=total"  # not a request id (those are UUIDs)
TEAM_PREFIX = "team:"  # key ids are "key_<hex>": a team's budget owner never names a key


def team_owner(team_id: str) -> str:
    """The budget owner of a team (its spend counters, holds and alert claims): key ids own
    theirs under the bare id, teams under `team:<id>`."""
    return TEAM_PREFIX + team_id


async def check_budget(client: redis.Redis, settings: Settings, key: KeyWithBudget,
                       now: datetime | None = None) -> BudgetStatus:
    """The key's spend in its current period: one Redis GET, no Postgres (what the admin shows;
    the router reserves through omniroute.shared_state.budget_holds). A key without a budget is never
    exhausted."""
    budget = Budget.parse(key.budget)
    if budget is None:
        return BudgetStatus(key_id=key.id, budget=None, spent_usd=Decimal(0))
    start, end = period_bounds(budget.period, now or datetime.now(UTC))
    raw = await client.get(spend_key(settings.env, key.id, budget.period, start))
    return BudgetStatus(key_id=key.id, budget=budget, spent_usd=from_nanos(int(raw or 0)),
                        period_start=start, period_end=end)


@dataclass(frozen=True, slots=True)
class Spend:
    request_id: str
    key_id: str
    nanos: int
    at: datetime
    team_id: str = ""  # the key's team when the request ran: its counters count the spend too

    @property
    def owners(self) -> tuple[str, ...]:
        return (self.key_id, team_owner(self.team_id)) if self.team_id else (self.key_id,)


# KEYS per entry: its counted marker, then per owner (the key, and its team when it has one) the
# daily, weekly and monthly counters, the holds hash and the hold deadlines. ARGV: marker TTL,
# total field, then per entry: request id, nano-dollars, number of owners, and per owner the three
# counters' TTLs. The request's holds (if any) are dropped whether or not its cost is added now: a
# marker already set means an earlier delivery added it (and dropped the holds). One marker per
# request guards every owner's counters, so key and team count it together, once. Returns how
# many entries were added.
_RECORD = """
local added = 0
local marker_ttl, total = ARGV[1], ARGV[2]
local k, a = 1, 3
while a <= #ARGV do
  local id, nanos, owners = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local new = redis.call('SET', KEYS[k], '1', 'NX', 'EX', marker_ttl)
  k, a = k + 1, a + 3
  for _ = 1, owners do
    local holds, deadlines = KEYS[k + 3], KEYS[k + 4]
    local held = redis.call('HGET', holds, id)
    if held then
      redis.call('HINCRBY', holds, total, string.format('%d', -tonumber(held)))
      redis.call('HDEL', holds, id)
      redis.call('ZREM', deadlines, id)
    end
    if new and tonumber(nanos) > 0 then
      for j = 0, 2 do
        redis.call('INCRBY', KEYS[k + j], nanos)
        redis.call('EXPIRE', KEYS[k + j], ARGV[a + j])
      end
    end
    k, a = k + 5, a + 3
  end
  if new then added = added + 1 end
end
return added
"""

# Raise each counter to at least the given value (never lower it); KEYS: counters, ARGV: value
# and TTL per counter.
_RAISE = """
local raised = 0
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tonumber(ARGV[i * 2 - 1]) > current then
    redis.call('SET', KEYS[i], ARGV[i * 2 - 1], 'EX', ARGV[i * 2])
    raised = raised + 1
  end
end
return raised
"""


def _ttl_s(end: datetime, now: datetime) -> int:
    return max(3600, int((end + _KEEP_AFTER_PERIOD - now).total_seconds()))


async def record_spend(client: redis.Redis, env: str, spends: Iterable[Spend],
                       now: datetime | None = None, marker_ttl_s: int = COUNTED_TTL_S) -> int:
    """Add each request's cost to its key's daily, weekly and monthly counters (and its team's),
    at most once per request id while its marker lives, and drop the request's holds (a free
    request's too). Returns how many were added now."""
    now = now or datetime.now(UTC)
    keys: list[str] = []
    args: list[str | int] = [marker_ttl_s, TOTAL_FIELD]
    for spend in spends:
        if not spend.key_id:
            continue
        keys.append(counted_key(env, spend.request_id))
        args.extend((spend.request_id, max(spend.nanos, 0), len(spend.owners)))
        for owner in spend.owners:
            for period in PERIODS:
                start, end = period_bounds(period, spend.at)
                keys.append(spend_key(env, owner, period, start))
                args.append(_ttl_s(end, now))
            keys.extend((holds_key(env, owner), hold_deadlines_key(env, owner)))
    if not keys:
        return 0
    return int(await client.eval(_RECORD, len(keys), *keys, *args))  # type: ignore[misc]


async def forget_counted(client: redis.Redis, env: str, request_ids: Iterable[str]) -> None:
    """After the commit the rows themselves stop a second count: drop the markers."""
    keys = [counted_key(env, request_id) for request_id in request_ids]
    if keys:
        await client.unlink(*keys)


async def raise_counters(client: redis.Redis, env: str,
                         totals: Mapping[tuple[str, str, datetime], int],
                         now: datetime | None = None) -> int:
    """`totals`: (key id, period, period start) → nano-dollars from Postgres. Returns how many
    counters were raised (0 when Redis already agreed)."""
    now = now or datetime.now(UTC)
    keys: list[str] = []
    args: list[int] = []
    for (key_id, period, start), nanos in totals.items():
        _, end = period_bounds(period, start)
        keys.append(spend_key(env, key_id, period, start))
        args.extend((nanos, _ttl_s(end, now)))
    if not keys:
        return 0
    return int(await client.eval(_RAISE, len(keys), *keys, *args))  # type: ignore[misc]


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD
