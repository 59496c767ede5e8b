"""The dashboard follows the caller's role exactly as the API does: each page and form route
declares its role like the API route it mirrors (`openapi_extra=requires(...)`; a page reads
with viewer, a form writes with admin unless declared), the gate enforces it, the navigation
lists only the pages the caller may open, and a page is rendered without the forms the caller
may not post (a viewer sees no write form at all; a team admin only their teams' key forms).

Hiding a form is a courtesy; the gate's check on the POST is what refuses."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request

from omniroute_admin import access

# A POST form, whole (forms do not nest in HTML), and its action.
_POST_FORM = re.compile(r"<form\b[^>]*\bmethod=\"post\"[^>]*>.*?</form>", re.IGNORECASE | re.DOTALL)
_ACTION = re.compile(r"\baction=\"([^\"]*)\"", re.IGNORECASE)
# Always offered: ending one's own session.
_ALWAYS = frozenset({"/dashboard/logout"})


@lru_cache(maxsize=4)
def _routes(app: Any) -> tuple[APIRoute, ...]:
    return tuple(route for route, _ in access.operations(app) if route.path.startswith("/dashboard"))


def route_for(app: Any, method: str, path: str) -> APIRoute | None:
    for route in _routes(app):
        if method in (route.methods or ()) and route.path_regex.match(path):
            return route
    return None


def may(principal: access.Principal, app: Any, method: str, path: str) -> bool:
    """Whether `principal` may open (GET) or post to (POST) this dashboard path."""
    route = route_for(app, method, path.split("?", 1)[0])
    return route is None or access.admits(principal, route, method)


def visible_nav(request: Request, nav: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    principal = access.principal_of(request)
    return [item for item in nav if may(principal, request.app, "GET", item[1])]


def without_forbidden_forms(request: Request, html: str) -> str:
    """The page without the POST forms whose action the caller may not post to (a form without
    an action posts to the page's own path)."""
    principal = access.principal_of(request)
    if principal.at_least("owner"):
        return html

    def keep(match: re.Match[str]) -> str:
        found = _ACTION.search(match.group(0)[:match.group(0).find(">") + 1])
        action = found.group(1) if found and found.group(1) else request.url.path
        if action in _ALWAYS or may(principal, request.app, "POST", action):
            return match.group(0)
        return ""

    return _POST_FORM.sub(keep, html)


def first_page(request: Request, nav: list[tuple[str, str, str]]) -> str | None:
    """Where a caller lands who may not open the overview (a team admin: their keys)."""
    visible = visible_nav(request, nav)
    return visible[0][1] if visible else None
