"""/api/evals: save suites, run one through the gateway, read runs (the use cases:
services/evals.py; the checking: features/evals.py).

`POST /api/evals` takes either `{"suite": {...}}` (save) or `{"run": "<suite>", "apiKey": ...}`
(run). The key: the one in the request, else OMNIROUTE_EVALS_API_KEY.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.features.evals import Suite
from omniroute_admin.services import evals
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["evals"])


class EvalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    suite: Suite | None = None
    run: str | None = Field(default=None, min_length=1, max_length=64)
    api_key: str | None = Field(default=None, alias="apiKey", min_length=8, max_length=500)
    base_url: str | None = Field(default=None, alias="baseUrl", pattern=r"^https?://", max_length=500)

    @model_validator(mode="after")
    def _one(self) -> EvalRequest:
        if (self.suite is None) == (self.run is None):
            raise ValueError('send either "suite" (save it) or "run" (the name of a suite to run)')
        return self


@router.get("/api/evals", summary="Eval suites, each with its latest run")
async def list_suites(state: StateDep) -> dict[str, Any]:
    return {"suites": await evals.list_suites(state)}


@router.post("/api/evals", summary="Save a suite ({suite}) or run one ({run, apiKey})")
async def save_or_run(body: EvalRequest, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    if body.suite is not None:
        return await evals.save_suite(state, caller, body.suite)
    assert body.run is not None   # the model's validator: one of the two
    return await evals.run_suite(state, caller, body.run, body.api_key, body.base_url)


@router.get("/api/evals/{name}", summary="One suite and its recent runs")
async def get_suite(name: str, state: StateDep, limit: int = 20) -> dict[str, Any]:
    return await evals.get_suite(state, name, limit)


@router.get("/api/evals/{name}/compare", summary="Compare two runs (default: the latest two)")
async def compare_runs(name: str, state: StateDep, run: int | None = None,
                       base: int | None = None) -> dict[str, Any]:
    return await evals.compare_runs(state, name, run, base)


@router.delete("/api/evals/{name}", summary="Delete a suite (its runs stay readable)")
async def delete_suite(name: str, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    await evals.delete_suite(state, caller, name)
    return {"deleted": name}
