"""/api/cli-tools: the coding CLIs on the admin's machine, and their configs pointed at this
gateway (the use cases: services/cli_tools.py; the config writers: features/cli_tools.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from omniroute_admin.deps import CallerDep, StateDep
from omniroute_admin.features.cli_tools import TOOLS
from omniroute_admin.services import cli_tools
from omniroute_admin.sessions import require_session

router = APIRouter(dependencies=[Depends(require_session)], tags=["cli-tools"])


class WriteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An OmniRoute key for the tool (create one with POST /api/keys): only hashes are stored here,
    # so the admin cannot supply one itself.
    api_key: str = Field(alias="apiKey", min_length=8, max_length=500)
    base_url: str | None = Field(default=None, alias="baseUrl", pattern=r"^https?://", max_length=500)
    model: str | None = Field(default=None, min_length=1, max_length=200)


@router.get("/api/cli-tools/runtime/{tool_id}", summary="Is the CLI installed and runnable here?")
async def runtime(tool_id: str) -> dict[str, Any]:
    return await cli_tools.runtime(tool_id)


def _register(tool_id: str) -> None:
    async def get(state: StateDep) -> dict[str, Any]:
        return await cli_tools.look(state, tool_id)

    async def post(body: WriteBody, state: StateDep, caller: CallerDep) -> dict[str, Any]:
        return await cli_tools.point_at_gateway(state, caller, tool_id, body.api_key, body.base_url, body.model)

    path = f"/api/cli-tools/{tool_id}-settings"
    router.add_api_route(path, get, methods=["GET"], summary=f"{tool_id}: runtime and current config")
    router.add_api_route(path, post, methods=["POST"],
                         summary=f"{tool_id}: point its config at this gateway (backup kept)")


for _id in TOOLS:
    _register(_id)
