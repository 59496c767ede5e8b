"""Eval suites: save one, run one through the gateway (features/evals.py does the checking),
read its runs and compare two of them.

A run needs an OmniRoute key: the one given, else OMNIROUTE_EVALS_API_KEY (an internal key set by
the operator); keys are stored as hashes only, so the admin cannot mint a usable one by itself."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from psycopg import AsyncConnection

from omniroute.store import evals_repo
from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import evals
from omniroute_admin.gateway_url import public_url
from omniroute_admin.state import AdminState


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "suite": row["suite"], "startedAt": row["started_at"].isoformat(),
            "finishedAt": row["finished_at"].isoformat() if row["finished_at"] else None,
            "total": row["total"], "passed": row["passed"],
            "passRate": round(row["passed"] / row["total"], 4) if row["total"] else 0.0,
            "results": row["results"]}


async def _runs(conn: AsyncConnection[Any], suite: str, limit: int) -> list[dict[str, Any]]:
    return [_run_row(r) for r in await evals_repo.runs(conn, suite, limit)]


async def _suite(conn: AsyncConnection[Any], name: str) -> evals.Suite:
    spec = await evals_repo.suite_spec(conn, name)
    if spec is None:
        raise HTTPException(404, f"No eval suite {name!r}.")
    return evals.Suite.model_validate(spec)


async def list_suites(state: AdminState) -> list[dict[str, Any]]:
    """Every suite with its latest run."""
    async with state.pool.connection() as conn:
        suites = []
        for name, spec in await evals_repo.list_suites(conn):
            latest = await _runs(conn, name, 1)
            suites.append({"name": name, "description": spec.get("description", ""),
                           "model": spec.get("model"), "cases": len(spec.get("cases", [])),
                           "lastRun": {k: latest[0][k] for k in ("id", "passRate", "startedAt")}
                           if latest else None})
    return suites


async def save_suite(state: AdminState, caller: Caller, suite: evals.Suite) -> dict[str, Any]:
    spec = suite.model_dump(mode="json", exclude_none=True)
    async with state.pool.connection() as conn, conn.transaction():
        await evals_repo.save_suite(conn, suite.name, spec)
        await audit.record(state, caller, "evals.save", suite.name, after=spec, conn=conn)
    return {"saved": suite.name, "cases": len(suite.cases)}


async def run_suite(state: AdminState, caller: Caller, name: str, api_key: str | None,
                    base_url: str | None) -> dict[str, Any]:
    """Run every case through the gateway; the run, and how it compares with the previous one."""
    key = api_key or state.settings.evals_api_key
    if not key:
        raise HTTPException(400, "An eval run needs an OmniRoute API key: send apiKey, or set "
                                 "OMNIROUTE_EVALS_API_KEY for the admin service.")
    async with state.pool.connection() as conn:
        suite = await _suite(conn, name)
        previous = await _runs(conn, suite.name, 1)
    results = await evals.run_suite(suite, base_url or public_url(state.settings), key)
    passed = sum(r["passed"] for r in results)
    async with state.pool.connection() as conn, conn.transaction():
        row = await evals_repo.insert_run(conn, suite.name, results, passed)
        await audit.record(state, caller, "evals.run", suite.name, conn=conn,
                           detail={"run": row["id"], "passed": passed, "total": len(results)})
    return {**_run_row(row), "comparison": evals.compare(results, previous[0] if previous else None)}


async def get_suite(state: AdminState, name: str, limit: int = 20) -> dict[str, Any]:
    """The suite and its recent runs."""
    async with state.pool.connection() as conn:
        suite = await _suite(conn, name)
        runs = await _runs(conn, name, max(1, min(limit, 200)))
    return {"suite": suite.model_dump(mode="json", exclude_none=True), "runs": runs}


async def compare_runs(state: AdminState, name: str, run: int | None, base: int | None) -> dict[str, Any]:
    """Two runs compared (default: the latest and the one before it)."""
    async with state.pool.connection() as conn:
        runs = await _runs(conn, name, 1000)
    by_id = {r["id"]: r for r in runs}
    current = by_id.get(run) if run else (runs[0] if runs else None)
    if current is None:
        raise HTTPException(404, f"No such run of {name!r}.")
    older = [r for r in runs if r["id"] < current["id"]]
    previous = by_id.get(base) if base else (older[0] if older else None)
    if base and previous is None:
        raise HTTPException(404, f"No run {base} of {name!r}.")
    return {"run": current["id"], **evals.compare(current["results"], previous)}


async def delete_suite(state: AdminState, caller: Caller, name: str) -> None:
    """Its runs stay readable."""
    async with state.pool.connection() as conn, conn.transaction():
        if not await evals_repo.delete_suite(conn, name):
            raise HTTPException(404, f"No eval suite {name!r}.")
        await audit.record(state, caller, "evals.delete", name, conn=conn)
