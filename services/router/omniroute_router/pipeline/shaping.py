"""The shaping stage: the global settings' system prompt prefix/suffix and thinking budget,
applied to the canonical body before the caches see it (they key on the shaped body)."""

from __future__ import annotations

from typing import Any

import orjson

from omniroute.config.routing_spec import RoutingSettings, SystemPromptSettings, ThinkingBudgetSettings
from omniroute.formats.canonical import budget_to_effort, ext, requested_budget, set_ext
from omniroute.formats.openai_chat import wants_usage_in_stream
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router.pipeline.call import Call, Events, Next

Json = dict[str, Any]


async def shaping(call: Call, next: Next) -> Events:
    call.body = call.parsed_body()
    if shape(call.body, call.snapshot.routing):
        shaped = router_pb2.ChatRequest()
        shaped.CopyFrom(call.request)
        shaped.body, shaped.native_body = orjson.dumps(call.body), b""
        shaped.client_format = common_pb2.OPENAI_CHAT
        call.shaped = shaped
    call.usage_chunk = call.upstream.client_format != common_pb2.OPENAI_CHAT or wants_usage_in_stream(call.body)
    async for event in next(call):
        yield event


def shape(body: Json, settings: RoutingSettings) -> bool:
    """Adjust `body` in place; True when something changed."""
    changed = _system_prompt(body, settings.system_prompt)
    return _thinking(body, settings.thinking_budget) or changed


def _system_prompt(body: Json, settings: SystemPromptSettings) -> bool:
    """The prefix before the caller's system prompt, the suffix after it: around the leading
    system (or developer) messages, whose content may be text or parts (Anthropic's system
    blocks); alone, first, when the caller sent none."""
    if not settings.enabled or not (settings.prefix or settings.suffix):
        return False
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    lead = 0
    while lead < len(messages) and _is_system(messages[lead]):
        lead += 1
    if not lead:
        text = "\n\n".join(p for p in (settings.prefix, settings.suffix) if p)
        messages.insert(0, {"role": "system", "content": text})
        return True
    if settings.prefix:
        messages[0] = _with_text(messages[0], settings.prefix, first=True)
    if settings.suffix:
        messages[lead - 1] = _with_text(messages[lead - 1], settings.suffix, first=False)
    return True


def _is_system(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") in ("system", "developer")


def _with_text(message: Json, text: str, *, first: bool) -> Json:
    content = message.get("content")
    if isinstance(content, list):
        part = {"type": "text", "text": text}
        return {**message, "content": [part, *content] if first else [*content, part]}
    own = content if isinstance(content, str) else ""
    return {**message, "content": "\n\n".join(p for p in ((text, own) if first else (own, text)) if p)}


def _thinking(body: Json, settings: ThinkingBudgetSettings) -> bool:
    if settings.mode == "passthrough":
        return False
    asked = requested_budget(body)
    if settings.mode == "custom":
        budget = settings.budget_tokens
        # Always this budget: an Anthropic caller's own thinking mode (adaptive, disabled) would
        # otherwise win on an Anthropic upstream, which then never sees the budget.
        ext(body).pop("thinking_mode", None)
    elif asked is None or isinstance(ext(body).get("thinking_budget"), int):
        return False  # auto/adaptive only fill in a budget the caller left open
    elif settings.mode == "auto":
        budget = settings.budget_tokens
    else:  # adaptive: a longer prompt gets more room to think, within the configured cap
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or []
                           if isinstance(m, dict))
        budget = min(settings.budget_tokens, max(1024, prompt_chars // 2))
    set_ext(body, "thinking_budget", budget)
    effort = budget_to_effort(budget)
    if effort is not None:
        body["reasoning_effort"] = effort
    return True
