"""Dashboard pages for routing and operations: combos and aliases, rate limits and breakers, cache,
cloud sync, CLI tools and evals.

Like pages.py, every action calls the same use case as the JSON API (services/), so validation,
audit rows and config announcements are the API's. A form whose input is invalid re-renders its
page (400) with the message beside the form and the typed values kept; anything else answers
POST → redirect → GET with a flash message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from omniroute.config.routing_spec import STRATEGIES, ComboSpec
from omniroute_admin.access import requires
from omniroute_admin.api.cli_tools import WriteBody
from omniroute_admin.api.evals import EvalRequest
from omniroute_admin.api.routing import AliasBody
from omniroute_admin.api.sync import RemoteBody, SyncAction
from omniroute_admin.dashboard.base import attempt, back, button, form, gate, page, split
from omniroute_admin.deps import admin_state
from omniroute_admin.features.cli_tools import TOOLS
from omniroute_admin.services import cli_tools, evals, providers, routing, sync

router = APIRouter(include_in_schema=False)


# --- combos and aliases --------------------------------------------------------------------------

async def _model_choices(request: Request) -> list[str]:
    """Suggestions for combo steps and alias targets (a <datalist>; any other name is allowed)."""
    state = admin_state(request)
    listed = await providers.list_providers(state)
    names = [f"{p['id']}/{m}" for p in listed for m in (p["models"] or [])]
    names += [f"{p['id']}/*" for p in listed]
    return (sorted(set(names)) + [c.name for c in await routing.list_combos(state)]
            + sorted(await routing.list_aliases(state)))


async def _combos_page(request: Request, *, errors: dict[str, str] | None = None,
                       values: dict[str, dict[str, str]] | None = None, status: int = 200) -> Response:
    state = admin_state(request)
    return await page(request, "combos.html", "combos", {
        "combos": await routing.list_combos(state), "aliases": await routing.list_aliases(state),
        "strategies": STRATEGIES, "choices": await _model_choices(request),
        "errors": errors or {}, "values": values or {}}, status=status)


def _combo_of(fields: dict[str, str], name: str) -> ComboSpec:
    """A ComboSpec from the combo form (one step per line; blank numbers take the defaults)."""
    weights = split(fields.get("weights", ""))
    data: dict[str, Any] = {
        "name": name, "strategy": fields.get("strategy") or "priority",
        "models": [line.strip() for line in fields.get("models", "").splitlines() if line.strip()],
        "weights": [float(w) for w in weights] if weights else None,
        "enabled": fields.get("enabled") == "on"}
    for field in ("max_retries", "retry_delay_ms", "timeout_s"):
        if fields.get(field, "").strip():
            data[field] = fields[field].strip()
    return ComboSpec.model_validate(data)


@router.get("/dashboard/combos")
async def combos_page(request: Request) -> Response:
    await gate(request)
    return await _combos_page(request)


@router.post("/dashboard/combos")
async def combo_create(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    name = fields.get("name", "").strip()
    _, error = await attempt(lambda: routing.create_combo(admin_state(request), caller, _combo_of(fields, name)))
    if error:
        return await _combos_page(request, errors={"new": error}, values={"new": fields}, status=400)
    return back("/dashboard/combos", f"Combo {name} created.")


@router.post("/dashboard/combos/{name}")
async def combo_update(name: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    _, error = await attempt(lambda: routing.update_combo(admin_state(request), caller, name,
                                                          _combo_of(fields, name)))
    if error:
        return await _combos_page(request, errors={name: error}, values={name: fields}, status=400)
    return back("/dashboard/combos", f"Combo {name} saved.")


@router.post("/dashboard/combos/{name}/steps")
async def combo_step(name: str, request: Request) -> Response:
    """Move one step up or down, or remove it. The step's text travels with its index so that an
    edit made meanwhile elsewhere is noticed instead of moving the wrong step."""
    caller = await gate(request)
    fields = await form(request)
    state = admin_state(request)
    combo = await routing.find_combo(state, name)
    if combo is None:
        return back("/dashboard/combos", f"No combo named {name}.", "error")
    index = int(fields["index"]) if fields.get("index", "").isdigit() else -1
    if not 0 <= index < len(combo.models) or combo.models[index] != fields.get("step"):
        return back("/dashboard/combos", f"Combo {name} changed meanwhile: look again and retry.", "error")
    models, weights = list(combo.models), list(combo.weights) if combo.weights else None
    action = fields.get("action", "")
    if action in ("up", "down"):
        other = index - 1 if action == "up" else index + 1
        if not 0 <= other < len(models):
            return back("/dashboard/combos", "That step cannot move further.", "error")
        models[index], models[other] = models[other], models[index]
        if weights is not None:
            weights[index], weights[other] = weights[other], weights[index]
        done = f"Moved {combo.models[index]} {action} in {name}."
    elif action == "remove":
        del models[index]
        if weights is not None:
            del weights[index]
        done = f"Removed {combo.models[index]} from {name}."
    else:
        return back("/dashboard/combos", "Unknown step action.", "error")

    async def save() -> None:
        changed = ComboSpec.model_validate({**combo.model_dump(), "models": models, "weights": weights})
        await routing.update_combo(state, caller, name, changed)
    _, error = await attempt(save)
    if error:
        return await _combos_page(request, errors={name: error}, status=400)
    return back("/dashboard/combos", done)


@router.post("/dashboard/combos/{name}/delete")
async def combo_delete(name: str, request: Request) -> Response:
    return await button(request, "/dashboard/combos",
                        lambda caller: routing.delete_combo(admin_state(request), caller, name),
                        lambda _: f"Combo {name} deleted.")


@router.post("/dashboard/aliases")
async def alias_set(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)

    async def save() -> None:
        # The API's body model: the same validation of the alias name.
        body = AliasBody(alias=fields.get("alias", "").strip(), model=fields.get("model", "").strip())
        await routing.set_alias(admin_state(request), caller, body.alias, body.model)
    _, error = await attempt(save)
    if error:
        return await _combos_page(request, errors={"alias": error}, values={"alias": fields}, status=400)
    return back("/dashboard/combos", f"Alias {fields.get('alias', '').strip()} saved.")


@router.post("/dashboard/aliases/{alias}/delete")
async def alias_delete(alias: str, request: Request) -> Response:
    return await button(request, "/dashboard/combos",
                        lambda caller: routing.delete_alias(admin_state(request), caller, alias),
                        lambda _: f"Alias {alias} deleted.")


# --- rate limits and breakers; cache -------------------------------------------------------------

@router.get("/dashboard/limits")
async def limits_page(request: Request) -> Response:
    await gate(request)
    state = admin_state(request)
    limits = await routing.rate_limits(state)
    resilience = await routing.resilience(state)
    return await page(request, "limits.html", "limits", {
        "keys": limits["keys"], "rpm": limits["connections"], "health": resilience["connections"],
        "profile": resilience["resilience"]})


@router.post("/dashboard/limits/reset")
async def limits_reset(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    connection = fields.get("connection", "").strip() or None
    answer, error = await attempt(lambda: routing.reset_resilience(admin_state(request), caller, connection))
    if error:
        return back("/dashboard/limits", error, "error")
    if connection:
        return back("/dashboard/limits", f"Breaker of {connection} reset.")
    return back("/dashboard/limits", f"{answer['reset']} breaker(s) reset, "
                                     f"{answer['cooldownsCleared']} cooldown(s) cleared.")


@router.get("/dashboard/cache")
async def cache_page(request: Request) -> Response:
    await gate(request)
    return await page(request, "cache.html", "cache", {"stats": await routing.cache_stats(admin_state(request))})


@router.post("/dashboard/cache/clear")
async def cache_clear(request: Request) -> Response:
    return await button(request, "/dashboard/cache",
                        lambda caller: routing.clear_cache(admin_state(request), caller),
                        lambda answer: f"Cache cleared: {answer['cleared']} exact and "
                                       f"{answer['semanticCleared']} semantic entries.")


# --- cloud sync ----------------------------------------------------------------------------------

async def _sync_page(request: Request, *, token: dict[str, Any] | None = None, error: str | None = None,
                     url: str = "", status: int = 200) -> Response:
    return await page(request, "sync.html", "sync", {
        "status": await sync.status(admin_state(request)), "token": token, "error": error, "url": url},
        status=status)


@router.get("/dashboard/sync")
async def sync_page(request: Request) -> Response:
    await gate(request)
    return await _sync_page(request)


@router.post("/dashboard/sync/initialize", openapi_extra=requires("owner"))
async def sync_initialize(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    issued, error = await attempt(lambda: sync.initialize(admin_state(request), caller,
                                                          rotate=fields.get("rotate") == "on"))
    if error:
        return back("/dashboard/sync", error, "error")
    # Rendered, not redirected: the clear token exists only in this answer.
    return await _sync_page(request, token=issued, status=201)


@router.post("/dashboard/sync/remote", openapi_extra=requires("owner"))
async def sync_remote(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)

    async def save() -> None:
        # The API's body model: the same checks of the URL and the token.
        remote = RemoteBody(url=fields.get("url", "").strip(), token=fields.get("token", "").strip())
        await sync.configure(admin_state(request), caller, remote.url, remote.token)
    _, error = await attempt(save)
    if error:
        return await _sync_page(request, error=error, url=fields.get("url", ""), status=400)
    return back("/dashboard/sync", "Remote saved.")


@router.post("/dashboard/sync/run", openapi_extra=requires("owner"))
async def sync_run(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    action = fields.get("action", "")

    async def run() -> dict[str, Any]:
        wanted = SyncAction.model_validate({"action": action, "force": fields.get("force") == "on"})
        return await sync.run(admin_state(request), caller, wanted.action, wanted.force)
    answer, error = await attempt(run)
    if error:
        return back("/dashboard/sync", f"{action.capitalize() or 'Sync'} failed: {error}", "error")
    if action == "pull":
        rows = ", ".join(f"{n} {table}" for table, n in (answer.get("rows") or {}).items())
        return back("/dashboard/sync", f"Pulled the configuration of the remote ({rows}).")
    return back("/dashboard/sync", "Pushed this configuration to the remote.")


# --- CLI tools -----------------------------------------------------------------------------------

@router.get("/dashboard/cli-tools")
async def cli_tools_page(request: Request) -> Response:
    await gate(request)
    # Each look runs `<tool> --version` (up to PROBE_TIMEOUT_S): all at once, not one after another.
    state = admin_state(request)
    found = await asyncio.gather(*(cli_tools.look(state, t) for t in TOOLS))
    return await page(request, "cli_tools.html", "cli-tools", {"tools": found})


@router.post("/dashboard/cli-tools/{tool_id}")
async def cli_tool_write(tool_id: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)

    async def write() -> dict[str, Any]:
        body = WriteBody.model_validate({
            "apiKey": fields.get("api_key", "").strip(), "baseUrl": fields.get("base_url", "").strip() or None,
            "model": fields.get("model", "").strip() or None})
        return await cli_tools.point_at_gateway(admin_state(request), caller, tool_id, body.api_key,
                                                body.base_url, body.model)
    written, error = await attempt(write)
    if error:
        return back("/dashboard/cli-tools", f"{tool_id}: not written: {error}", "error")
    backup = f" (previous file kept as {written['backup']})" if written.get("backup") else ""
    return back("/dashboard/cli-tools", f"{tool_id}: wrote {written['written']}{backup}.")


# --- evals ---------------------------------------------------------------------------------------

_EXAMPLE_SUITE = {"name": "smoke", "description": "Answers at all", "model": "provider/model",
                  "cases": [{"id": "hello", "input": "Say hello.",
                             "expected": {"type": "contains", "value": "hello"}}]}


async def _evals_page(request: Request, *, error: str | None = None, suite_text: str | None = None,
                      status: int = 200) -> Response:
    return await page(request, "evals.html", "evals", {
        "suites": await evals.list_suites(admin_state(request)), "error": error,
        "suite_text": suite_text if suite_text is not None else orjson.dumps(
            _EXAMPLE_SUITE, option=orjson.OPT_INDENT_2).decode()}, status=status)


@router.get("/dashboard/evals")
async def evals_page(request: Request) -> Response:
    await gate(request)
    return await _evals_page(request)


@router.post("/dashboard/evals")
async def eval_save(request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)
    text = fields.get("suite", "")

    async def save() -> dict[str, Any]:
        try:
            suite = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the suite is not JSON: {exc}") from None
        wanted = EvalRequest(suite=suite)   # the API's body model: the same validation
        assert wanted.suite is not None
        return await evals.save_suite(admin_state(request), caller, wanted.suite)
    saved, error = await attempt(save)
    if error:
        return await _evals_page(request, error=error, suite_text=text, status=400)
    return back("/dashboard/evals", f"Suite {saved['saved']} saved ({saved['cases']} cases).")


@router.post("/dashboard/evals/{name}/run")
async def eval_run(name: str, request: Request) -> Response:
    caller = await gate(request)
    fields = await form(request)

    async def run() -> dict[str, Any]:
        wanted = EvalRequest.model_validate({
            "run": name, "apiKey": fields.get("api_key", "").strip() or None,
            "baseUrl": fields.get("base_url", "").strip() or None})
        return await evals.run_suite(admin_state(request), caller, name, wanted.api_key, wanted.base_url)
    result, error = await attempt(run)
    if error:
        return back(f"/dashboard/evals/{name}", f"Not run: {error}", "error")
    return back(f"/dashboard/evals/{name}?run={result['id']}",
                f"Run {result['id']}: {result['passed']} of {result['total']} passed.")


@router.get("/dashboard/evals/{name}")
async def eval_suite_page(name: str, request: Request) -> Response:
    await gate(request)
    state = admin_state(request)

    def number(key: str) -> int | None:
        value = request.query_params.get(key, "")
        return int(value) if value.isdigit() else None
    suite = await evals.get_suite(state, name)
    chosen, base = number("run"), number("base")
    comparison, error = await attempt(lambda: evals.compare_runs(state, name, chosen, base))
    shown = next((r for r in suite["runs"] if r["id"] == (comparison or {}).get("run")), None)
    return await page(request, "eval_suite.html", "evals", {
        "name": name, "suite": suite["suite"], "runs": suite["runs"], "shown": shown,
        "comparison": comparison, "compare_error": error if suite["runs"] else None,
        "suite_json": orjson.dumps(suite["suite"], option=orjson.OPT_INDENT_2).decode()})
