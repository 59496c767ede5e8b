"""Operations the control plane asks for (the admin has no internet egress, so they run here):
a provider's live model list, provider-side token counting, an OAuth token exchange."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import orjson

from omniroute.v1 import executor_pb2
from omniroute_executor.families.anthropic import API_VERSION
from omniroute_executor.families.base import json_headers, with_query_key
from omniroute_executor.operations.upstream import Json, exchange, json_of, refuse


def _default_auth(target: executor_pb2.Target) -> dict[str, str]:
    return {{"anthropic": "x-api-key", "gemini": "x-goog-api-key"}.get(target.family, "authorization"):
            target.api_key if target.family in ("anthropic", "gemini") else f"Bearer {target.api_key}"}


async def list_models(client: httpx.AsyncClient, target: executor_pb2.Target,
                      limit: httpx.Timeout) -> Json:
    """`{"data": [{"id", "owned_by"}]}` whatever the provider's own listing looks like."""
    style = target.params.get("list_models") or target.family
    headers = json_headers(target, _default_auth(target))
    base = target.base_url
    if style == "anthropic":
        headers = {"anthropic-version": API_VERSION, **headers}
    if style in ("openai", "anthropic"):
        raw = json_of(await exchange(client, target.family, "GET", with_query_key(target, f"{base}/models"),
                                     timeout_=limit, headers=headers))
        ids = [str(m.get("id")) for m in raw.get("data") or [] if isinstance(m, dict)]
    elif style == "azure":
        version = target.params.get("api_version") or "2024-10-21"
        raw = json_of(await exchange(client, target.family, "GET", f"{base}/openai/models",
                                     params={"api-version": version}, timeout_=limit, headers=headers))
        ids = [str(m.get("id")) for m in raw.get("data") or [] if isinstance(m, dict)]
    elif style == "gemini":
        raw = json_of(await exchange(client, target.family, "GET", with_query_key(target, f"{base}/models"),
                                     timeout_=limit, headers=headers))
        ids = [str(m.get("name", "")).removeprefix("models/") for m in raw.get("models") or []
               if isinstance(m, dict)]
    elif style == "ollama":
        raw = json_of(await exchange(client, target.family, "GET", f"{base}/api/tags", timeout_=limit,
                                     headers=headers))
        ids = [str(m.get("name") or m.get("model")) for m in raw.get("models") or [] if isinstance(m, dict)]
    else:
        raise refuse(400, f"The provider {target.provider_id!r} has no model-list API.")
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": target.provider_id}
                                       for i in ids if i]}


async def count_tokens(client: httpx.AsyncClient, target: executor_pb2.Target, body: Json,
                       limit: httpx.Timeout) -> Json:
    """The provider's own count: Anthropic `/v1/messages/count_tokens` (body: Anthropic Messages
    request) or Gemini `:countTokens` (body: generateContent request)."""
    if target.family == "anthropic":
        headers = {"anthropic-version": API_VERSION, **json_headers(target, _default_auth(target))}
        sent = {k: v for k, v in body.items() if k not in ("max_tokens", "stream", "temperature")}
        sent["model"] = target.model
        raw = json_of(await exchange(client, "anthropic", "POST", f"{target.base_url}/messages/count_tokens",
                                     timeout_=limit, headers=headers, content=orjson.dumps(sent)))
        return {"input_tokens": int(raw.get("input_tokens") or 0)}
    if target.family == "gemini":
        model = quote(target.model.removeprefix("models/"), safe="/-._~")
        url = with_query_key(target, f"{target.base_url}/models/{model}:countTokens")
        raw = json_of(await exchange(client, "gemini", "POST", url, timeout_=limit,
                                     headers=json_headers(target, _default_auth(target)),
                                     content=orjson.dumps(_gemini_count_body(target, body))))
        return {"input_tokens": int(raw.get("totalTokens") or 0)}
    raise refuse(400, f"The provider {target.provider_id!r} cannot count tokens.")


def _gemini_count_body(target: executor_pb2.Target, body: Json) -> Json:
    """`contents` alone counts only the turns; a system instruction or tools are counted by
    Gemini only inside a whole `generateContentRequest` (which then needs the model name)."""
    contents = body.get("contents") or []
    extras = {k: body[k] for k in ("systemInstruction", "tools", "toolConfig", "cachedContent") if body.get(k)}
    if not extras:
        return {"contents": contents}
    return {"generateContentRequest": {"model": f"models/{target.model.removeprefix('models/')}",
                                       "contents": contents, **extras}}


async def oauth_token(client: httpx.AsyncClient, body: Json, limit: httpx.Timeout) -> Json:
    """POST a form (or JSON, `"format": "json"`, for token endpoints that take only that, like
    Anthropic's) to an OAuth token (or device-authorization) endpoint; its JSON back. An OAuth
    error answer (400 with {"error": ...}) is returned as data, not raised: the caller decides
    (authorization_pending is a normal answer while polling a device code)."""
    url = body.get("token_url")
    form = body.get("form")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(form, dict):
        raise refuse(400, "oauth: 'token_url' and 'form' are required.", code="invalid_body")
    try:
        fields = {k: str(v) for k, v in form.items()}
        as_json = body.get("format") == "json"
        response = await client.post(url, json=fields if as_json else None, data=None if as_json else fields,
                                     headers={"accept": "application/json"}, timeout=limit)
    except httpx.HTTPError as exc:
        raise refuse(502, f"the OAuth server could not be reached: {type(exc).__name__}",
                     code="upstream_unreachable") from exc
    try:
        parsed = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        parsed = {"error": "invalid_response", "error_description": response.text[:200]}
    if not isinstance(parsed, dict):
        parsed = {"error": "invalid_response"}
    return {"status": response.status_code, "body": parsed}
