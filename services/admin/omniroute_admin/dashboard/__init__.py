"""The web dashboard (/dashboard): server-rendered pages, plain HTML forms (POST + redirect), a
little script for niceties only. Pages call the same use cases as the JSON API (services/)."""

from __future__ import annotations

from fastapi import APIRouter

from omniroute_admin.dashboard import base, directory, governance, mcp, ops, pages
from omniroute_admin.dashboard.base import error_page

# One flat list of the pages' routes (not nested routers), so that router.routes lists every
# page: the security tests walk it to check that each one is gated.
router = APIRouter(include_in_schema=False)
for part in (pages, governance, directory, ops, mcp, base):   # main pages; teams and keys; people and
    # tokens; routing and operations; the MCP gateway; static files
    router.routes.extend(part.router.routes)

__all__ = ["error_page", "router"]
