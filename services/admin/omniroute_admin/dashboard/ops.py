"""Dashboard pages for routing and operations: combos and aliases, rate limits and breakers, cache,
cloud sync, CLI tools and evals.

Like dashboard.py, every action calls the JSON API's own handler function (routing_api, sync_api,
cli_tools_api, evals_api) with this request, so validation, audit rows and config announcements
are the API's. A form whose input is invalid re-renders its page (400) with the message beside the
form and the typed values kept; anything else answers POST → redirect → GET with a flash message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import Response

from omniroute.config.routing_spec import STRATEGIES, ComboSpec
from omniroute.store import config_repo
from omniroute_admin import cli_tools, cli_tools_api, evals_api, routing_api, sync_api
from omniroute_admin.dashboard import _back, _error_text, _form, _gate, _page, _split
from omniroute_admin.deps import admin_state

router = APIRouter(include_in_schema=False)
_FAILURES = (HTTPException, ValidationError, ValueError)


def _body(answer: Response | dict[str, Any]) -> dict[str, Any]:
    """The JSON of an API handler's answer (some return a JSONResponse rather than a dict)."""
    if isinstance(answer, dict):
        return answer
    value = orjson.loads(bytes(answer.body))
    return value if isinstance(value, dict) else {}


async def _attempt(action: Callable[[], Awaitable[Any]]) -> tuple[Any, str | None]:
    """(the action's result, None) or (None, the message to show)."""
    try:
        return await action(), None
    except _FAILURES as exc:
        return None, _error_text(exc)


# --- combos and aliases --------------------------------------------------------------------------

async def _model_choices(request: Request) -> list[str]:
    """Suggestions for combo steps and alias targets (a <datalist>; any other name is allowed)."""
    state = admin_state(request)
    async with state.pool.connection() as conn:
        providers = await config_repo.list_providers(conn)
        combos = await config_repo.list_combos(conn)
        aliases = await config_repo.list_aliases(conn)
    names = [f"{p['id']}/{m}" for p in providers for m in (p["models"] or [])]
    names += [f"{p['id']}/*" for p in providers]
    return sorted(set(names)) + [c.name for c in combos] + sorted(aliases)


async def _combos_page(request: Request, *, errors: dict[str, str] | None = None,
                       values: dict[str, dict[str, str]] | None = None, status: int = 200) -> Response:
    state = admin_state(request)
    async with state.pool.connection() as conn:
        combos = await config_repo.list_combos(conn)
        aliases = await config_repo.list_aliases(conn)
    return await _page(request, "combos.html", "combos", {
        "combos": combos, "aliases": aliases, "strategies": STRATEGIES, "choices": await _model_choices(request),
        "errors": errors or {}, "values": values or {}}, status=status)


def _combo_of(form: dict[str, str], name: str) -> ComboSpec:
    """A ComboSpec from the combo form (one step per line; blank numbers take the defaults)."""
    weights = _split(form.get("weights", ""))
    data: dict[str, Any] = {
        "name": name, "strategy": form.get("strategy") or "priority",
        "models": [line.strip() for line in form.get("models", "").splitlines() if line.strip()],
        "weights": [float(w) for w in weights] if weights else None,
        "enabled": form.get("enabled") == "on"}
    for field in ("max_retries", "retry_delay_ms", "timeout_s"):
        if form.get(field, "").strip():
            data[field] = form[field].strip()
    return ComboSpec.model_validate(data)


@router.get("/dashboard/combos")
async def combos_page(request: Request) -> Response:
    await _gate(request)
    return await _combos_page(request)


@router.post("/dashboard/combos")
async def combo_create(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    name = form.get("name", "").strip()

    async def create() -> None:
        await routing_api.create_combo(_combo_of(form, name), request)
    _, error = await _attempt(create)
    if error:
        return await _combos_page(request, errors={"new": error}, values={"new": form}, status=400)
    return _back("/dashboard/combos", f"Combo {name} created.")


@router.post("/dashboard/combos/{name}")
async def combo_update(name: str, request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def update() -> None:
        await routing_api.update_combo(name, _combo_of(form, name), request)
    _, error = await _attempt(update)
    if error:
        return await _combos_page(request, errors={name: error}, values={name: form}, status=400)
    return _back("/dashboard/combos", f"Combo {name} saved.")


@router.post("/dashboard/combos/{name}/steps")
async def combo_step(name: str, request: Request) -> Response:
    """Move one step up or down, or remove it. The step's text travels with its index so that an
    edit made meanwhile elsewhere is noticed instead of moving the wrong step."""
    await _gate(request)
    form = await _form(request)
    combo = await routing_api._combo(admin_state(request), name)
    if combo is None:
        return _back("/dashboard/combos", f"No combo named {name}.", "error")
    index = int(form["index"]) if form.get("index", "").isdigit() else -1
    if not 0 <= index < len(combo.models) or combo.models[index] != form.get("step"):
        return _back("/dashboard/combos", f"Combo {name} changed meanwhile: look again and retry.", "error")
    models, weights = list(combo.models), list(combo.weights) if combo.weights else None
    action = form.get("action", "")
    if action in ("up", "down"):
        other = index - 1 if action == "up" else index + 1
        if not 0 <= other < len(models):
            return _back("/dashboard/combos", "That step cannot move further.", "error")
        for items in (models, weights):
            if items is not None:
                items[index], items[other] = items[other], items[index]
        done = f"Moved {combo.models[index]} {action} in {name}."
    elif action == "remove":
        del models[index]
        if weights is not None:
            del weights[index]
        done = f"Removed {combo.models[index]} from {name}."
    else:
        return _back("/dashboard/combos", "Unknown step action.", "error")

    async def save() -> None:
        changed = ComboSpec.model_validate({**combo.model_dump(), "models": models, "weights": weights})
        await routing_api.update_combo(name, changed, request)
    _, error = await _attempt(save)
    if error:
        return await _combos_page(request, errors={name: error}, status=400)
    return _back("/dashboard/combos", done)


@router.post("/dashboard/combos/{name}/delete")
async def combo_delete(name: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)
    _, error = await _attempt(lambda: routing_api.delete_combo(name, request))
    return _back("/dashboard/combos", error or f"Combo {name} deleted.", "error" if error else "ok")


@router.post("/dashboard/aliases")
async def alias_set(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def save() -> None:
        body = routing_api.AliasBody(alias=form.get("alias", "").strip(), model=form.get("model", "").strip())
        await routing_api.set_alias(body, request)
    _, error = await _attempt(save)
    if error:
        return await _combos_page(request, errors={"alias": error}, values={"alias": form}, status=400)
    return _back("/dashboard/combos", f"Alias {form.get('alias', '').strip()} saved.")


@router.post("/dashboard/aliases/{alias}/delete")
async def alias_delete(alias: str, request: Request) -> Response:
    await _gate(request)
    await _form(request)
    _, error = await _attempt(lambda: routing_api.delete_alias(alias, request))
    return _back("/dashboard/combos", error or f"Alias {alias} deleted.", "error" if error else "ok")


# --- rate limits and breakers; cache -------------------------------------------------------------

@router.get("/dashboard/limits")
async def limits_page(request: Request) -> Response:
    await _gate(request)
    limits = await routing_api.rate_limits(request)
    resilience = await routing_api.get_resilience(request)
    return await _page(request, "limits.html", "limits", {
        "keys": limits["keys"], "rpm": limits["connections"], "health": resilience["connections"],
        "profile": resilience["resilience"]})


@router.post("/dashboard/limits/reset")
async def limits_reset(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    connection = form.get("connection", "").strip() or None
    body = routing_api.ResetBody(connection=connection)
    answer, error = await _attempt(lambda: routing_api.reset_resilience(request, body))
    if error:
        return _back("/dashboard/limits", error, "error")
    if connection:
        return _back("/dashboard/limits", f"Breaker of {connection} reset.")
    return _back("/dashboard/limits", f"{answer['reset']} breaker(s) reset, "
                                      f"{answer['cooldownsCleared']} cooldown(s) cleared.")


@router.get("/dashboard/cache")
async def cache_page(request: Request) -> Response:
    await _gate(request)
    return await _page(request, "cache.html", "cache", {"stats": await routing_api.cache_stats(request)})


@router.post("/dashboard/cache/clear")
async def cache_clear(request: Request) -> Response:
    await _gate(request)
    await _form(request)
    answer, error = await _attempt(lambda: routing_api.clear_cache(request))
    if error:
        return _back("/dashboard/cache", error, "error")
    return _back("/dashboard/cache", f"Cache cleared: {answer['cleared']} exact and "
                                     f"{answer['semanticCleared']} semantic entries.")


# --- cloud sync ----------------------------------------------------------------------------------

async def _sync_page(request: Request, *, token: dict[str, Any] | None = None, error: str | None = None,
                     url: str = "", status: int = 200) -> Response:
    return await _page(request, "sync.html", "sync", {
        "status": await sync_api.status(request), "token": token, "error": error, "url": url}, status=status)


@router.get("/dashboard/sync")
async def sync_page(request: Request) -> Response:
    await _gate(request)
    return await _sync_page(request)


@router.post("/dashboard/sync/initialize")
async def sync_initialize(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    body = sync_api.InitBody(rotate=form.get("rotate") == "on")
    issued, error = await _attempt(lambda: sync_api.initialize(request, body))
    if error:
        return _back("/dashboard/sync", error, "error")
    # Rendered, not redirected: the clear token exists only in this answer.
    return await _sync_page(request, token=issued, status=201)


@router.post("/dashboard/sync/remote")
async def sync_remote(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def save() -> None:
        await sync_api.configure(sync_api.RemoteBody(url=form.get("url", "").strip(),
                                                     token=form.get("token", "").strip()), request)
    _, error = await _attempt(save)
    if error:
        return await _sync_page(request, error=error, url=form.get("url", ""), status=400)
    return _back("/dashboard/sync", "Remote saved.")


@router.post("/dashboard/sync/run")
async def sync_run(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    action = form.get("action", "")

    async def run() -> dict[str, Any]:
        body = sync_api.SyncAction.model_validate({"action": action, "force": form.get("force") == "on"})
        return _body(await sync_api.sync(body, request))
    answer, error = await _attempt(run)
    if error:
        return _back("/dashboard/sync", f"{action.capitalize() or 'Sync'} failed: {error}", "error")
    if action == "pull":
        rows = ", ".join(f"{n} {table}" for table, n in (answer.get("rows") or {}).items())
        return _back("/dashboard/sync", f"Pulled the configuration of the remote ({rows}).")
    return _back("/dashboard/sync", "Pushed this configuration to the remote.")


# --- CLI tools -----------------------------------------------------------------------------------

@router.get("/dashboard/cli-tools")
async def cli_tools_page(request: Request) -> Response:
    await _gate(request)
    # Each look runs `<tool> --version` (up to PROBE_TIMEOUT_S): all at once, not one after another.
    found = await asyncio.gather(*(cli_tools_api._settings(t, request) for t in cli_tools.TOOLS))
    return await _page(request, "cli_tools.html", "cli-tools", {"tools": found})


@router.post("/dashboard/cli-tools/{tool_id}")
async def cli_tool_write(tool_id: str, request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def write() -> dict[str, Any]:
        body = cli_tools_api.WriteBody.model_validate({
            "apiKey": form.get("api_key", "").strip(), "baseUrl": form.get("base_url", "").strip() or None,
            "model": form.get("model", "").strip() or None})
        return await cli_tools_api._write(tool_id, body, request)
    written, error = await _attempt(write)
    if error:
        return _back("/dashboard/cli-tools", f"{tool_id}: not written: {error}", "error")
    backup = f" (previous file kept as {written['backup']})" if written.get("backup") else ""
    return _back("/dashboard/cli-tools", f"{tool_id}: wrote {written['written']}{backup}.")


# --- evals ---------------------------------------------------------------------------------------

_EXAMPLE_SUITE = {"name": "smoke", "description": "Answers at all", "model": "provider/model",
                  "cases": [{"id": "hello", "input": "Say hello.",
                             "expected": {"type": "contains", "value": "hello"}}]}


async def _evals_page(request: Request, *, error: str | None = None, suite_text: str | None = None,
                      status: int = 200) -> Response:
    return await _page(request, "evals.html", "evals", {
        "suites": (await evals_api.list_suites(request))["suites"], "error": error,
        "suite_text": suite_text if suite_text is not None else orjson.dumps(
            _EXAMPLE_SUITE, option=orjson.OPT_INDENT_2).decode()}, status=status)


@router.get("/dashboard/evals")
async def evals_page(request: Request) -> Response:
    await _gate(request)
    return await _evals_page(request)


@router.post("/dashboard/evals")
async def eval_save(request: Request) -> Response:
    await _gate(request)
    form = await _form(request)
    text = form.get("suite", "")

    async def save() -> dict[str, Any]:
        try:
            suite = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the suite is not JSON: {exc}") from None
        return await evals_api.save_or_run(evals_api.EvalRequest(suite=suite), request)
    saved, error = await _attempt(save)
    if error:
        return await _evals_page(request, error=error, suite_text=text, status=400)
    return _back("/dashboard/evals", f"Suite {saved['saved']} saved ({saved['cases']} cases).")


@router.post("/dashboard/evals/{name}/run")
async def eval_run(name: str, request: Request) -> Response:
    await _gate(request)
    form = await _form(request)

    async def run() -> dict[str, Any]:
        body = evals_api.EvalRequest.model_validate({
            "run": name, "apiKey": form.get("api_key", "").strip() or None,
            "baseUrl": form.get("base_url", "").strip() or None})
        return await evals_api.save_or_run(body, request)
    result, error = await _attempt(run)
    if error:
        return _back(f"/dashboard/evals/{name}", f"Not run: {error}", "error")
    return _back(f"/dashboard/evals/{name}?run={result['id']}",
                 f"Run {result['id']}: {result['passed']} of {result['total']} passed.")


@router.get("/dashboard/evals/{name}")
async def eval_suite_page(name: str, request: Request) -> Response:
    await _gate(request)

    def number(key: str) -> int | None:
        value = request.query_params.get(key, "")
        return int(value) if value.isdigit() else None
    suite = await evals_api.get_suite(name, request)
    chosen, base = number("run"), number("base")
    comparison, error = await _attempt(lambda: evals_api.compare_runs(name, request, chosen, base))
    shown = next((r for r in suite["runs"] if r["id"] == (comparison or {}).get("run")), None)
    return await _page(request, "eval_suite.html", "evals", {
        "name": name, "suite": suite["suite"], "runs": suite["runs"], "shown": shown,
        "comparison": comparison, "compare_error": error if suite["runs"] else None,
        "suite_json": orjson.dumps(suite["suite"], option=orjson.OPT_INDENT_2).decode()})
