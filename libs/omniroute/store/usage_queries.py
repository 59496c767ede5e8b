"""Read side of usage: time-bucketed history, per-request logs, per-connection totals. Every
query is bounded by a started_at range (the BRIN / (x, started_at) indexes) and a row limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

BUCKETS = ("minute", "hour", "day", "week", "month")
GROUPS = {"key": "key_id", "provider": "provider", "model": "model", "connection": "connection",
          "status": "status", "team": "team_id", "person": "person_id"}


def owner_column(column: str, table: str = "usage") -> sql.Composable:
    """A usage row's team_id / person_id; a row that carries none (written before the router
    recorded them) counts for its key's current team / person."""
    return sql.SQL("coalesce(nullif({table}.{column}, ''), "
                   "(SELECT k.{column} FROM api_keys k WHERE k.id = {table}.key_id), '')").format(
        table=sql.Identifier(table), column=sql.Identifier(column))


def group_column(group_by: str) -> sql.Composable:
    column = GROUPS[group_by]
    return owner_column(column) if group_by in ("team", "person") else sql.Identifier(column)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    since: datetime
    until: datetime
    key_id: str | None = None
    provider: str | None = None
    model: str | None = None
    connection: str | None = None
    team_id: str | None = None      # the row's team (or its key's, for a row that names none)
    person_id: str | None = None    # the row's person (likewise)
    # A team admin's scope: rows of these teams only (None: every team). A row from before
    # usage carried its team counts for its key's team.
    within_teams: tuple[str, ...] | None = None

    def scope(self) -> tuple[list[sql.Composable], list[Any]]:
        """The team admin's scope alone (also for one request looked up by its id)."""
        if self.within_teams is None:
            return [], []
        return ([sql.SQL("(team_id = ANY(%s) OR (team_id = '' AND key_id IN "
                         "(SELECT id FROM api_keys WHERE team_id = ANY(%s))))")],
                [list(self.within_teams), list(self.within_teams)])

    def where(self) -> tuple[sql.Composable, list[Any]]:
        parts: list[sql.Composable] = [sql.SQL("started_at >= %s AND started_at < %s")]
        params: list[Any] = [self.since, self.until]
        scoped, scope_params = self.scope()
        parts += scoped
        params += scope_params
        for column, value in (("key_id", self.key_id), ("provider", self.provider),
                              ("model", self.model), ("connection", self.connection)):
            if value:
                parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        for column, value in (("team_id", self.team_id), ("person_id", self.person_id)):
            if value:   # written this way, (team_id, started_at) serves it
                parts.append(sql.SQL("({column} = %s OR ({column} = '' AND key_id IN "
                                     "(SELECT id FROM api_keys WHERE {column} = %s)))").format(
                    column=sql.Identifier(column)))
                params.extend([value, value])
        return sql.SQL(" AND ").join(parts), params


_TOTALS = sql.SQL(
    "count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors, "
    "coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens, "
    "coalesce(sum(cached_tokens), 0) AS cached_tokens, "
    "coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens, coalesce(sum(cost_usd), 0) AS cost_usd, "
    "count(*) FILTER (WHERE cache_hit) AS cache_hits, coalesce(avg(latency_ms), 0) AS avg_latency_ms")


def _totals_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"requests": int(row["requests"]), "errors": int(row["errors"]),
            "inputTokens": int(row["input_tokens"]), "outputTokens": int(row["output_tokens"]),
            "cachedTokens": int(row["cached_tokens"]), "reasoningTokens": int(row["reasoning_tokens"]),
            "costUsd": float(row["cost_usd"]), "cacheHits": int(row["cache_hits"]),
            "avgLatencyMs": round(float(row["avg_latency_ms"]), 1)}


async def history(conn: AsyncConnection[Any], where: UsageFilter, bucket: str,
                  group_by: str | None) -> list[dict[str, Any]]:
    """One entry per (bucket start, group value) that has rows, in time order."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    condition, params = where.where()
    group = group_column(group_by) if group_by else sql.SQL("''")
    query = sql.SQL(
        "SELECT date_trunc(%s, started_at, 'UTC') AS bucket, {group}::text AS grp, {totals} "
        "FROM usage WHERE {condition} GROUP BY 1, 2 ORDER BY 1, 2").format(
            group=group, totals=_TOTALS, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, [bucket, *params])
        rows = await cursor.fetchall()
    result = []
    for row in rows:
        entry: dict[str, Any] = {"start": row["bucket"].isoformat()}
        if group_by:
            entry[group_by] = row["grp"]
        entry.update(_totals_json(row))
        result.append(entry)
    return result


async def totals(conn: AsyncConnection[Any], where: UsageFilter,
                 group_by: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    condition, params = where.where()
    if group_by is None:
        query = sql.SQL("SELECT {totals} FROM usage WHERE {condition}").format(
            totals=_TOTALS, condition=condition)
    else:
        query = sql.SQL("SELECT {group}::text AS grp, {totals} FROM usage WHERE {condition} "
                        "GROUP BY 1 ORDER BY sum(cost_usd) DESC, 1").format(
            group=group_column(group_by), totals=_TOTALS, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        rows = await cursor.fetchall()
    if group_by is None:
        return _totals_json(rows[0])
    return [{group_by: row["grp"], **_totals_json(row)} for row in rows]


async def request_logs(conn: AsyncConnection[Any], where: UsageFilter, *, limit: int,
                       before: tuple[datetime, str] | None = None,
                       request_id: str | None = None, payloads: bool = False) -> list[dict[str, Any]]:
    """Newest first; `before` (started_at, request_id) of the last row seen pages backwards.
    With `payloads`, each row also carries its logged request / response (detailed logging;
    None where none was captured)."""
    condition, params = where.where()
    if request_id:   # whenever it ran, but still within a team admin's teams
        scoped, scope_params = where.scope()
        condition = sql.SQL(" AND ").join([sql.SQL("request_id = %s"), *scoped])
        params = [request_id, *scope_params]
    elif before is not None:
        condition = sql.SQL("{} AND (started_at, request_id) < (%s, %s)").format(condition)
        params = [*params, *before]
    source = sql.SQL("usage")
    if payloads:
        source = sql.SQL("usage LEFT JOIN request_payloads USING (request_id)")
    query = sql.SQL("SELECT *, {team} AS owner_team, {person} AS owner_person FROM {source} "
                    "WHERE {condition} ORDER BY started_at DESC, request_id DESC LIMIT %s").format(
        team=owner_column("team_id"), person=owner_column("person_id"), source=source, condition=condition)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, [*params, limit])
        rows = await cursor.fetchall()
    if not payloads:
        return [_log_json(row) for row in rows]
    return [{**_log_json(row), "requestPayload": row["request_payload"],
             "responsePayload": row["response_payload"]} for row in rows]


def _log_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": row["request_id"], "startedAt": row["started_at"].isoformat(),
            "keyId": row["key_id"], "teamId": row.get("owner_team", ""), "personId": row.get("owner_person", ""),
            "provider": row["provider"], "connection": row["connection"],
            "model": row["model"], "requestedModel": row["requested_model"], "combo": row["combo"],
            "status": row["status"], "errorClass": row["error_class"],
            # The reason the caller was given ('' on success; 0009_usage_error_message.sql).
            "errorMessage": row.get("error_message", ""),
            "inputTokens": row["input_tokens"], "outputTokens": row["output_tokens"],
            "cachedTokens": row["cached_tokens"], "reasoningTokens": row["reasoning_tokens"],
            "costUsd": float(row["cost_usd"]), "latencyMs": row["latency_ms"], "ttftMs": row["ttft_ms"],
            "stream": row["stream"], "clientFormat": row["client_format"], "cacheHit": row["cache_hit"],
            "failedAttempts": row["failed_attempts"],
            # Transcriptions only (0007_audio_usage.sql); None for every other request.
            "audioSeconds": row.get("audio_seconds")}


async def resolve_connection(conn: AsyncConnection[Any], connection_id: str) -> tuple[str | None, str]:
    """(provider id, connection name) as usage rows record them. A connection id from the
    connections table, "provider/name", or a bare connection name are all accepted."""
    row = await (await conn.execute("SELECT provider_id, name FROM connections WHERE id = %s",
                                    (connection_id,))).fetchone()
    if row is not None:
        return row[0], row[1]
    provider, slash, name = connection_id.partition("/")
    return (provider, name) if slash else (None, connection_id)


# --- the dashboard's reads: totals and slots since a moment, breakdowns, recent requests -----

DASHBOARD_GROUPS = {"key": "u.key_id", "provider": "u.provider", "model": "u.model",
                    "connection": "u.connection", "team": "team", "person": "person"}


async def _cost_column(conn: AsyncConnection[Any]) -> sql.Composable:
    """cost_usd comes with the accounting migration; without it costs show as 0."""
    row = await (await conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'usage' AND column_name = 'cost_usd'"
    )).fetchone()
    return sql.SQL("u.cost_usd") if row else sql.SQL("0::numeric")


async def totals_since(conn: AsyncConnection[Any], since: datetime) -> dict[str, Any]:
    """Requests, tokens, cost, errors and p95 latency since `since`."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT count(*) AS requests, coalesce(sum(input_tokens), 0) AS input_tokens,
                  coalesce(sum(output_tokens), 0) AS output_tokens, coalesce(sum({cost}), 0) AS cost,
                  count(*) FILTER (WHERE status >= 400) AS errors,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
           FROM usage u WHERE started_at >= %s""").format(cost=await _cost_column(conn)), (since,))
    return await cursor.fetchone() or {}


async def slots_since(conn: AsyncConnection[Any], since: datetime, bucket_s: int) -> dict[int, dict[str, Any]]:
    """Per slot of `bucket_s` seconds (epoch // bucket_s) that has rows: requests, errors, tokens, p95."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        """SELECT floor(extract(epoch FROM started_at) / %s)::bigint AS slot, count(*) AS requests,
                  count(*) FILTER (WHERE status >= 400) AS errors,
                  coalesce(sum(input_tokens + output_tokens), 0) AS tokens,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
           FROM usage WHERE started_at >= %s GROUP BY slot""", (bucket_s, since))
    return {row["slot"]: row for row in await cursor.fetchall()}


async def breakdown_since(conn: AsyncConnection[Any], since: datetime, group: str,
                          within_teams: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The top 200 values of `group` (a key by its name) since `since`, busiest first;
    `within_teams` (a team admin's scope): rows of those teams only."""
    column = DASHBOARD_GROUPS.get(group, DASHBOARD_GROUPS["model"])
    label: sql.Composable = sql.SQL("coalesce(k.name, u.key_id)") if group == "key" else sql.SQL(column)
    if group == "team":   # a row without its team counts for its key's
        label = sql.SQL("coalesce(nullif(u.team_id, ''), k.team_id, '')")
    elif group == "person":   # likewise; by e-mail where the person is known
        label = sql.SQL("coalesce((SELECT p.email FROM people p WHERE p.id = {id}), {id})").format(
            id=sql.SQL("coalesce(nullif(u.person_id, ''), k.person_id, '')"))
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT {label} AS name, count(*) AS requests, coalesce(sum(u.input_tokens), 0) AS input_tokens,
                  coalesce(sum(u.output_tokens), 0) AS output_tokens, coalesce(sum({cost}), 0) AS cost,
                  count(*) FILTER (WHERE u.status >= 400) AS errors,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY u.latency_ms) AS p95
           FROM usage u LEFT JOIN api_keys k ON k.id = u.key_id
           WHERE u.started_at >= %s {scope} GROUP BY 1 ORDER BY requests DESC, name LIMIT 200""").format(
        label=label, cost=await _cost_column(conn),
        scope=sql.SQL("") if within_teams is None else
        sql.SQL("AND coalesce(nullif(u.team_id, ''), k.team_id, '') = ANY(%s)")),
        (since,) if within_teams is None else (since, list(within_teams)))
    return list(await cursor.fetchall())


async def recent_requests(conn: AsyncConnection[Any], *, limit: int, offset: int, errors_only: bool,
                          model: str, key: str, team: str = "",
                          within_teams: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Newest first; `model` matches the served or the requested model, `key` its id or name,
    `team` the row's team (its key's for a row without one); `within_teams`: a team admin's
    scope."""
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    row_team = sql.SQL("coalesce(nullif(u.team_id, ''), k.team_id, '')")
    if team:
        clauses.append(sql.SQL("{} = %s").format(row_team))
        params.append(team)
    if within_teams is not None:
        clauses.append(sql.SQL("{} = ANY(%s)").format(row_team))
        params.append(list(within_teams))
    if errors_only:
        clauses.append(sql.SQL("u.status >= 400"))
    if model:
        clauses.append(sql.SQL("(u.model = %s OR u.requested_model = %s)"))
        params += [model, model]
    if key:
        clauses.append(sql.SQL("(u.key_id = %s OR k.name = %s)"))
        params += [key, key]
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(sql.SQL(
        """SELECT u.request_id, u.started_at, coalesce(k.name, u.key_id) AS key, {row_team} AS team,
                  u.provider, u.connection,
                  u.model, u.requested_model, u.status, u.error_class, u.latency_ms, u.ttft_ms,
                  u.input_tokens, u.output_tokens, {cost} AS cost, u.stream, u.client_format, u.cache_hit
           FROM usage u LEFT JOIN api_keys k ON k.id = u.key_id WHERE {where}
           ORDER BY u.started_at DESC LIMIT %s OFFSET %s""").format(
        cost=await _cost_column(conn), row_team=row_team, where=sql.SQL(" AND ").join(clauses)),
        [*params, limit, offset])
    return list(await cursor.fetchall())
