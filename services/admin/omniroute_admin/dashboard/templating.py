"""Jinja2 environment of the dashboard (templates shipped in the package, autoescaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{float(value):,.{digits}f}"


env.filters["number"] = _number


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    page = env.get_template(template).render(request=request, **context)
    return HTMLResponse(page, status_code=status)
