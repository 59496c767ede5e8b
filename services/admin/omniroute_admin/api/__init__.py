"""The management API (/api/*): one module per area, each a thin HTTP layer over the use cases
in services/ (request models, status codes, headers)."""

from __future__ import annotations

from fastapi import APIRouter

from omniroute_admin import sessions
from omniroute_admin.api import (
    auth,
    backups,
    catalog,
    cli_tools,
    compliance,
    control,
    docs,
    evals,
    keys,
    mcp,
    oauth,
    oidc,
    people,
    providers,
    routing,
    settings,
    sync,
    teams,
    tokens,
    usage,
)

router = APIRouter()
for area in (sessions, auth, catalog, oauth, providers, routing, settings, compliance, backups, docs, usage,
             control, sync, cli_tools, evals, people, tokens, keys, teams, oidc, mcp):
    router.include_router(area.router)
