"""/api/usage/*, /api/pricing and (through api/monitoring.py) telemetry, sessions and health.

Usage rows are written by accounting; this module only reads them, edits prices and budgets,
and announces the edits (config.changed) so that accounting re-prices and routers see budgets.
Request payloads are captured only while the general setting `detailed_logging` is on: routers
redact and cap them, accounting stores them beside the usage row (request_payloads), and request
logs carry them; otherwise request logs carry the metadata of each request only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from omniroute.shared_state import budget as budgets
from omniroute.shared_state import budget_holds
from omniroute.store import budget_repo, config_repo, teams_repo, usage_queries
from omniroute.store.pricing import ANY_PROVIDER, Price
from omniroute.store.usage_queries import UsageFilter
from omniroute_admin import audit, settings_model
from omniroute_admin.access import TEAM_SCOPED_READ, requires
from omniroute_admin.api import monitoring
from omniroute_admin.deps import Caller, CallerDep, StateDep
from omniroute_admin.services import usage
from omniroute_admin.sessions import require_session
from omniroute_admin.state import AdminState

router = APIRouter(dependencies=[Depends(require_session)])
_MAX_RANGE = timedelta(days=400)


def parse_time(value: str | None, default: datetime) -> datetime:
    """ISO 8601 (a bare date or a naive time is UTC) or epoch seconds / milliseconds."""
    if not value:
        return default
    try:
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{value!r} is not a time: use ISO 8601 or epoch seconds.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _range(since: str | None, until: str | None, default_span: timedelta) -> tuple[datetime, datetime]:
    end = parse_time(until, datetime.now(UTC))
    start = parse_time(since, end - default_span)
    if start >= end:
        raise HTTPException(400, "`from` must be before `to`.")
    if end - start > _MAX_RANGE:
        raise HTTPException(400, f"A range may span at most {_MAX_RANGE.days} days.")
    return start, end


def _auto_bucket(span: timedelta) -> str:
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=3):
        return "hour"
    if span <= timedelta(days=90):
        return "day"
    return "week"


GroupBy = Literal["key", "provider", "model", "connection", "status", "team", "person"]
Bucket = Literal["minute", "hour", "day", "week", "month"]


# ---- pricing ---------------------------------------------------------------------------------

class PriceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider_type: str = Field(default=ANY_PROVIDER, alias="providerType", min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200)
    input: Decimal = Field(ge=0, le=100_000)
    output: Decimal = Field(ge=0, le=100_000)
    cached: Decimal | None = Field(default=None, ge=0, le=100_000)
    cache_write: Decimal | None = Field(default=None, alias="cacheWrite", ge=0, le=100_000)
    reasoning: Decimal | None = Field(default=None, ge=0, le=100_000)
    per_image: dict[str, Decimal] = Field(default_factory=dict, alias="perImage", max_length=100)
    per_audio_second: Decimal = Field(default=Decimal(0), alias="perAudioSecond", ge=0, le=100)
    source: str = Field(default="", max_length=500)

    def price(self) -> Price:
        return Price(provider_type=self.provider_type, model=self.model, input_per_mtok=self.input,
                     output_per_mtok=self.output, cached_per_mtok=self.cached,
                     cache_write_per_mtok=self.cache_write, reasoning_per_mtok=self.reasoning,
                     per_image=self.per_image, per_audio_second=self.per_audio_second, source=self.source)


class PriceEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: list[PriceSpec] = Field(min_length=1, max_length=1000)


@router.get("/api/pricing")
async def get_pricing(state: StateDep, provider_type: str | None = Query(None, alias="providerType"),
                      model: str | None = None) -> dict[str, Any]:
    return await usage.pricing(state, provider_type, model)


@router.put("/api/pricing")
@router.post("/api/pricing")
async def edit_pricing(body: PriceEdit | PriceSpec, state: StateDep) -> dict[str, Any]:
    """One price ({providerType, model, input, output, cached, cacheWrite, reasoning, perImage,
    perAudioSecond, source}) or {"prices": [...]}; upserts."""
    specs = body.prices if isinstance(body, PriceEdit) else [body]
    await usage.set_prices(state, [spec.price() for spec in specs])
    return {"updated": [spec.price().as_json() for spec in specs]}


# ---- budgets ---------------------------------------------------------------------------------

class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key_id: str = Field(alias="keyId", min_length=1, max_length=128)
    limit: Decimal | None = Field(ge=0, le=10_000_000)  # null removes the budget
    period: Literal["daily", "weekly", "monthly"] = "monthly"
    warn_at: float = Field(default=0.8, alias="warnAt", ge=0, le=1)
    # Shares of the limit that send a budget alert (webhook and NATS), once per period each.
    alert_at: list[float] = Field(default=list(budgets.DEFAULT_ALERT_AT), alias="alertAt",
                                  max_length=10)


@dataclass(frozen=True, slots=True)
class _KeyBudget:
    """The two fields of an API key that check_budget reads."""

    id: str
    budget: dict[str, Any] | None


async def _status(state: AdminState, key_id: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    status = await budgets.check_budget(state.redis, state.settings, _KeyBudget(key_id, raw))
    answer = status.as_json()
    if status.budget is not None:
        # Requests in flight hold their worst case (the router's reservations): the budget left
        # for new requests is `remaining - held`.
        held = budgets.from_nanos(await budget_holds.held_nanos(state.redis, state.settings.env, key_id))
        answer.update(held=float(held), resetsAt=answer["periodEnd"], timezone=str(budgets.budget_zone()))
    return answer


async def _team_status(state: AdminState, team: dict[str, Any]) -> dict[str, Any]:
    """A team's budget as a key's (spent: every key of the team; held: their requests in flight)."""
    answer = await _status(state, budgets.team_owner(team["id"]), team["budget"])
    answer.pop("keyId", None)
    return {"teamId": team["id"], "name": team["name"], **answer}


@router.get("/api/usage/budget", openapi_extra=TEAM_SCOPED_READ)
async def get_budgets(state: StateDep, caller: CallerDep,
                      key_id: str | None = Query(None, alias="keyId"),
                      team_id: str | None = Query(None, alias="teamId",
                                                  description="one team's budget")) -> dict[str, Any]:
    scope = caller.principal.team_scope
    async with state.pool.connection() as conn:
        if team_id is not None:
            teams = await teams_repo.list_teams(conn, [team_id]) if caller.principal.sees_team(team_id) else []
            if not teams:  # another team's is as absent as one that does not exist
                raise HTTPException(404, f"No team {team_id!r}.")
            return await _team_status(state, teams[0])
        rows = await budget_repo.list_budgets(conn, key_id, scope)
        teams = [] if key_id else [team for team in await teams_repo.list_teams(
            conn, list(scope) if scope is not None else None) if team["budget"]]
    if key_id and not rows:
        raise HTTPException(404, f"No key {key_id!r}.")
    statuses = [{**await _status(state, row["keyId"], row["budget"]), "name": row["name"]}
                for row in rows]
    if key_id:
        return statuses[0]
    return {"budgets": statuses, "teamBudgets": [await _team_status(state, team) for team in teams]}


@router.post("/api/usage/budget", openapi_extra=requires("team_admin"))
async def set_budget(spec: BudgetSpec, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    budget = None if spec.limit is None else budgets.Budget(
        limit_usd=spec.limit, period=spec.period, warn_at=spec.warn_at,
        alert_at=budgets.parse_alert_at(spec.alert_at))
    async with state.pool.connection() as conn:
        # Another team's key is as absent as a key that does not exist (ids do not leak).
        visible = await budget_repo.list_budgets(conn, spec.key_id, caller.principal.team_scope)
        if not visible or not await budget_repo.set_budget(conn, spec.key_id, budget):
            raise HTTPException(404, f"No key {spec.key_id!r}.")
        await audit.record(state, caller, "budgets.set", spec.key_id, conn=conn,
                           after=budget.as_json() if budget else None,
                           team_id=await budget_repo.team_of_key(conn, spec.key_id))
    await state.announce("keys")  # routers reload the snapshot that carries budgets
    return await _status(state, spec.key_id, budget.as_json() if budget else None)


# ---- usage queries ---------------------------------------------------------------------------

@router.get("/api/usage/history", openapi_extra=TEAM_SCOPED_READ)
async def usage_history(
        state: StateDep, caller: CallerDep, since: str | None = Query(None, alias="from"),
        until: str | None = Query(None, alias="to"), bucket: Bucket | None = None,
        group_by: GroupBy | None = Query(None, alias="groupBy"),
        key_id: str | None = Query(None, alias="keyId"), provider: str | None = None,
        model: str | None = None, team: str | None = Query(None, description="a team's id"),
        person: str | None = Query(None, description="a person's id or e-mail")) -> dict[str, Any]:
    """Usage per time bucket, optionally grouped (by team and person too) and filtered."""
    owners = await _owners(state, caller, team, person)
    start, end = _range(since, until, timedelta(hours=24))
    chosen = bucket or _auto_bucket(end - start)
    if chosen == "minute" and end - start > timedelta(days=2):
        raise HTTPException(400, "Minute buckets cover at most 2 days; pick a larger bucket.")
    where = UsageFilter(since=start, until=end, key_id=key_id, provider=provider, model=model,
                        within_teams=caller.principal.team_scope, **owners)
    async with state.pool.connection() as conn:
        buckets = await usage_queries.history(conn, where, chosen, group_by)
        total = await usage_queries.totals(conn, where)
    return {"from": start.isoformat(), "to": end.isoformat(), "bucket": chosen, "groupBy": group_by,
            "buckets": buckets, "totals": total}


async def _logs(state: AdminState, caller: Caller, since: str | None, until: str | None,
                key_id: str | None, provider: str | None, model: str | None, limit: int,
                before: str | None, before_id: str | None, request_id: str | None = None,
                payloads: bool = False, team: str | None = None,
                person: str | None = None) -> list[dict[str, Any]]:
    owners = await _owners(state, caller, team, person)
    start, end = _range(since, until, timedelta(days=7))
    where = UsageFilter(since=start, until=end, key_id=key_id, provider=provider, model=model,
                        within_teams=caller.principal.team_scope, **owners)
    cursor = (parse_time(before, end), before_id or "\uffff") if before else None
    async with state.pool.connection() as conn:
        return await usage_queries.request_logs(conn, where, limit=limit, before=cursor,
                                                request_id=request_id, payloads=payloads)


async def _owners(state: AdminState, caller: Caller, team: str | None,
                  person: str | None) -> dict[str, str | None]:
    """The team / person filters of a usage query: a team the caller may not see is 404 (ids do
    not leak); a person is given by id or e-mail."""
    if team and not caller.principal.sees_team(team):
        raise HTTPException(404, f"No team {team!r}.")
    person_id = None
    if person:
        async with state.pool.connection() as conn:
            try:
                person_id = await config_repo.resolve_person(conn, person)
            except config_repo.UnknownOwner as exc:
                raise HTTPException(404, str(exc)) from None
    return {"team_id": team or None, "person_id": person_id}


async def _detailed_logging(state: AdminState) -> bool:
    async with state.pool.connection() as conn:
        general = await settings_model.load(conn, "general", settings_model.GeneralSettings)
    return general.detailed_logging


@router.get("/api/usage/logs", openapi_extra=TEAM_SCOPED_READ)
async def usage_logs(
        state: StateDep, caller: CallerDep, since: str | None = Query(None, alias="from"),
        until: str | None = Query(None, alias="to"), key_id: str | None = Query(None, alias="keyId"),
        provider: str | None = None, model: str | None = None,
        limit: int = Query(100, ge=1, le=1000), before: str | None = None,
        team: str | None = None, person: str | None = None) -> dict[str, Any]:
    """Recent requests as one short line each, newest first."""
    rows = await _logs(state, caller, since, until, key_id, provider, model, limit, before, None,
                       team=team, person=person)
    lines = [f"{r['startedAt']} {r['status']} {r['provider']}/{r['model']} key={r['keyId'] or '-'} "
             f"in={r['inputTokens']} out={r['outputTokens']} ${r['costUsd']:.6f} "
             f"{r['latencyMs']:.0f}ms{' cache-hit' if r['cacheHit'] else ''}" for r in rows]
    return {"logs": lines, "count": len(lines)}


@router.get("/api/usage/request-logs", openapi_extra=TEAM_SCOPED_READ)
async def usage_request_logs(
        state: StateDep, caller: CallerDep, since: str | None = Query(None, alias="from"),
        until: str | None = Query(None, alias="to"), key_id: str | None = Query(None, alias="keyId"),
        provider: str | None = None, model: str | None = None,
        request_id: str | None = Query(None, alias="requestId"),
        limit: int = Query(100, ge=1, le=1000), before: str | None = None,
        before_id: str | None = Query(None, alias="beforeId"),
        payloads: bool = Query(True, description="false: leave the logged payloads out"),
        team: str | None = Query(None, description="a team's id"),
        person: str | None = Query(None, description="a person's id or e-mail")) -> dict[str, Any]:
    """Per request, newest first; page with before=<startedAt>&beforeId=<requestId> of the last
    row. `requestPayload` / `responsePayload`: what the router logged (redacted, capped) while
    detailed logging was on, else null. `detailedLogging`: the setting is on now, or a row shown
    carries payloads."""
    rows = await _logs(state, caller, since, until, key_id, provider, model, limit, before, before_id,
                       request_id, payloads=payloads, team=team, person=person)
    last = rows[-1] if len(rows) == limit else None
    detailed = await _detailed_logging(state) or any(
        row.get("requestPayload") is not None for row in rows)
    return {"requests": rows, "detailedLogging": detailed,
            "next": {"before": last["startedAt"], "beforeId": last["requestId"]} if last else None}


@router.get("/api/usage/request-logs/{request_id}", openapi_extra=TEAM_SCOPED_READ)
async def usage_request_log(request_id: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    """One request (whenever it ran), with its payloads when detailed logging captured them."""
    everything = UsageFilter(since=datetime.min, until=datetime.max, within_teams=caller.principal.team_scope)
    async with state.pool.connection() as conn:
        rows = await usage_queries.request_logs(conn, everything,
                                                limit=1, request_id=request_id, payloads=True)
    if not rows:
        raise HTTPException(404, f"No request {request_id!r} is recorded (or not yet).")
    return {**rows[0], "detailedLogging": rows[0]["requestPayload"] is not None}


router.include_router(monitoring.router)  # fixed /api/* paths, before the catch-all below


@router.get("/api/usage/{connection_id}")
async def usage_of_connection(
        connection_id: str, state: StateDep, since: str | None = Query(None, alias="from"),
        until: str | None = Query(None, alias="to")) -> dict[str, Any]:
    start, end = _range(since, until, timedelta(days=30))
    async with state.pool.connection() as conn:
        provider, name = await usage_queries.resolve_connection(conn, connection_id)
        where = UsageFilter(since=start, until=end, provider=provider, connection=name)
        total = await usage_queries.totals(conn, where)
        by_model = await usage_queries.totals(conn, where, "model")
    return {"connectionId": connection_id, "provider": provider, "connection": name,
            "from": start.isoformat(), "to": end.isoformat(), "totals": total, "byModel": by_model}
