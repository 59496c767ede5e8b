"""The coding CLIs on the admin's machine: look at one (installed, runnable, where its config
points) and point its config at this gateway (features/cli_tools.py writes the files)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException

from omniroute_admin import audit
from omniroute_admin.deps import Caller
from omniroute_admin.features import cli_tools
from omniroute_admin.gateway_url import public_url
from omniroute_admin.state import AdminState


def tool(tool_id: str) -> cli_tools.Tool:
    found = cli_tools.TOOLS.get(tool_id)
    if found is None:
        raise HTTPException(404, f"Unknown tool {tool_id!r}; known: {sorted(cli_tools.TOOLS)}.")
    return found


async def runtime(tool_id: str) -> dict[str, Any]:
    """Is the CLI on PATH, and does `<command> --version` answer (a blocking probe: in a thread)?"""
    return await asyncio.to_thread(cli_tools.runtime, tool(tool_id))


async def look(state: AdminState, tool_id: str) -> dict[str, Any]:
    """The tool's runtime, what its config says now, and whether that points at this gateway."""
    chosen = tool(tool_id)
    found = await asyncio.to_thread(cli_tools.current, chosen, cli_tools.home(state.settings.cli_home))
    gateway = public_url(state.settings)
    expected = gateway if chosen.id in ("claude", "gemini") else f"{gateway}/v1"
    return {**await runtime(tool_id), **found, "gatewayUrl": gateway,
            "pointsAtGateway": found.get("baseUrl") == expected}


async def point_at_gateway(state: AdminState, caller: Caller, tool_id: str, api_key: str,
                           base_url: str | None, model: str | None) -> dict[str, Any]:
    """Write the tool's config for this gateway (`base_url`, else its public URL) with `api_key`
    (an OmniRoute key: only hashes are stored, so the admin cannot supply one itself)."""
    chosen = tool(tool_id)
    base_url = base_url or public_url(state.settings)
    home = cli_tools.home(state.settings.cli_home)
    try:
        written = await asyncio.to_thread(cli_tools.write, chosen, home, base_url, api_key, model)
    except cli_tools.ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    await audit.record(state, caller, "cli_tools.write", chosen.id,
                       detail={"path": written["written"], "backup": written["backup"], "baseUrl": base_url})
    return {**written, "baseUrl": base_url}
