"""/api/evals: save suites, run one through the gateway, read runs (the logic: evals.py).

`POST /api/evals` takes either `{"suite": {...}}` (save) or `{"run": "<suite>", "apiKey": ...}`
(run). The key: the one in the request, else OMNIROUTE_EVALS_API_KEY (an internal key set by the
operator); keys are stored as hashes only, so the admin cannot mint a usable one by itself.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omniroute.store import evals_repo
from omniroute_admin import audit, evals
from omniroute_admin.deps import admin_state
from omniroute_admin.gateway_url import public_url
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["evals"])


class EvalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    suite: evals.Suite | None = None
    run: str | None = Field(default=None, min_length=1, max_length=64)
    api_key: str | None = Field(default=None, alias="apiKey", min_length=8, max_length=500)
    base_url: str | None = Field(default=None, alias="baseUrl", pattern=r"^https?://", max_length=500)

    @model_validator(mode="after")
    def _one(self) -> EvalRequest:
        if (self.suite is None) == (self.run is None):
            raise ValueError('send either "suite" (save it) or "run" (the name of a suite to run)')
        return self


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


@router.get("/api/evals", summary="Eval suites, each with its latest run")
async def list_suites(request: Request) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
        suites = []
        for name, spec in await evals_repo.list_suites(conn):
            latest = await _runs(conn, name, 1)
            suites.append({"name": name, "description": spec.get("description", ""),
                           "model": spec.get("model"), "cases": len(spec.get("cases", [])),
                           "lastRun": {k: latest[0][k] for k in ("id", "passRate", "startedAt")}
                           if latest else None})
    return {"suites": suites}


@router.post("/api/evals", summary="Save a suite ({suite}) or run one ({run, apiKey})")
async def save_or_run(body: EvalRequest, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    if body.suite is not None:
        spec = body.suite.model_dump(mode="json", exclude_none=True)
        async with state.pool.connection() as conn, conn.transaction():
            await evals_repo.save_suite(conn, body.suite.name, spec)
            await audit.record(state, request, "evals.save", body.suite.name, after=spec, conn=conn)
        return {"saved": body.suite.name, "cases": len(body.suite.cases)}
    assert body.run is not None
    key = body.api_key or os.environ.get("OMNIROUTE_EVALS_API_KEY", "")
    if not key:
        raise HTTPException(400, "An eval run needs an OmniRoute API key: send apiKey, or set "
                                 "OMNIROUTE_EVALS_API_KEY for the admin service.")
    async with state.pool.connection() as conn:
        suite = await _suite(conn, body.run)
        previous = await _runs(conn, suite.name, 1)
    base_url = body.base_url or public_url(state.settings)
    results = await evals.run_suite(suite, base_url, key)
    passed = sum(r["passed"] for r in results)
    async with state.pool.connection() as conn, conn.transaction():
        row = await evals_repo.insert_run(conn, suite.name, results, passed)
        await audit.record(state, request, "evals.run", suite.name, conn=conn,
                           detail={"run": row["id"], "passed": passed, "total": len(results)})
    return {**_run_row(row), "comparison": evals.compare(results, previous[0] if previous else None)}


@router.get("/api/evals/{name}", summary="One suite and its recent runs")
async def get_suite(name: str, request: Request, limit: int = 20) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
        suite = await _suite(conn, name)
        runs = await _runs(conn, name, max(1, min(limit, 200)))
    return {"suite": suite.model_dump(mode="json", exclude_none=True), "runs": runs}


@router.get("/api/evals/{name}/compare", summary="Compare two runs (default: the latest two)")
async def compare_runs(name: str, request: Request, run: int | None = None,
                       base: int | None = None) -> dict[str, Any]:
    async with admin_state(request).pool.connection() as conn:
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


@router.delete("/api/evals/{name}", summary="Delete a suite (its runs stay readable)")
async def delete_suite(name: str, request: Request) -> dict[str, Any]:
    state = admin_state(request)
    async with state.pool.connection() as conn, conn.transaction():
        if not await evals_repo.delete_suite(conn, name):
            raise HTTPException(404, f"No eval suite {name!r}.")
        await audit.record(state, request, "evals.delete", name, conn=conn)
    return {"deleted": name}
