"""Google's Code Assist API, which the Gemini CLI calls with a Google account's OAuth token
(base_url `https://cloudcode-pa.googleapis.com/v1internal`; methods are `{base}:{method}`).

Its bodies are Gemini's, wrapped: a request is `{"model", "project", "request": <a
generateContent body>}` to `:generateContent` or `:streamGenerateContent?alt=sse`, and every
answer (each stream frame too) is `{"response": <a GenerateContentResponse>, "traceId"}`
(google-gemini/gemini-cli packages/core/src/code_assist: server.ts, converter.ts).

`project` is the account's Code Assist project: `:loadCodeAssist` names it; an account that has
none yet is onboarded first (`:onboardUser` with the default tier of `allowedTiers`, asked again
until its long-running operation is `done`), as the CLI's setup.ts does. It is found once per
connection and token and kept in this process (`find_params`)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from omniroute.v1 import executor_pb2
from omniroute_executor.families import gemini
from omniroute_executor.families.base import Family, Json, PostJson, UpstreamRefused, json_headers

CLIENT_METADATA = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
ONBOARD_POLLS, ONBOARD_POLL_S = 10, 1.0
_projects: dict[str, tuple[str, str]] = {}  # connection → (its token's digest, project id)


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    inner = dict(body)
    body.clear()
    body.update({"model": target.model.removeprefix("models/"), "project": target.params.get("project", ""),
                 "request": inner})
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{target.base_url}:{method}", json_headers(target, {"authorization": f"Bearer {target.api_key}"})


def _unwrap(data: Json) -> Json:
    inner = data.get("response")
    return inner if isinstance(inner, dict) else data


async def _project(target: executor_pb2.Target, post: PostJson) -> dict[str, str]:
    """{"project": the account's Code Assist project} (loadCodeAssist; onboardUser when it has
    none). Raises UpstreamRefused with the API's answer when a step is refused."""
    connection = f"{target.provider_id}:{target.connection}"
    token = hashlib.sha256(target.api_key.encode()).hexdigest()[:16]
    known = _projects.get(connection)
    if known is None or known[0] != token:  # a new token may be another account's
        status, loaded = await post(f"{target.base_url}:loadCodeAssist", {"metadata": CLIENT_METADATA})
        if status >= 400:
            raise UpstreamRefused(status, loaded)
        found = loaded.get("cloudaicompanionProject")
        known = (token, found if isinstance(found, str) and found else await _onboard(target, post, loaded))
        _projects[connection] = known
    return {"project": known[1]}


async def _onboard(target: executor_pb2.Target, post: PostJson, loaded: Json) -> str:
    tiers = [t for t in loaded.get("allowedTiers") or [] if isinstance(t, dict)]
    tier = next((str(t.get("id")) for t in tiers if t.get("isDefault")), "legacy-tier")
    for attempt in range(ONBOARD_POLLS):
        if attempt:
            await asyncio.sleep(ONBOARD_POLL_S)
        status, operation = await post(f"{target.base_url}:onboardUser", {"tierId": tier, "metadata": CLIENT_METADATA})
        if status >= 400:
            raise UpstreamRefused(status, operation)
        if operation.get("done"):
            made: Any = ((operation.get("response") or {}).get("cloudaicompanionProject") or {}).get("id")
            if isinstance(made, str) and made:
                return made
            break
    # A tier that wants the user's own Google Cloud project (Workspace accounts) is not offered.
    raise UpstreamRefused(400, {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message":
                                          "Code Assist gave this account no project (one that needs a "
                                          "Google Cloud project of its own is not supported)"}})


GEMINI_CODE_ASSIST = Family(
    name="gemini-code-assist",
    prepare=_prepare,
    put_model=gemini.GEMINI.put_model,  # the model goes in the wrapper (prepare)
    ends_stream=gemini.GEMINI.ends_stream,  # on the unwrapped frame, as every hook
    unwrap=_unwrap,
    find_params=_project,
)
