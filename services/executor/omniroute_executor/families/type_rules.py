"""A provider type's request rules (catalog.yaml `request`, omniroute.catalog.RequestRules):
what a subscription API insists on in every chat body beyond headers (Claude Code's identity
line, the Codex backend's instructions, store and stream). Applied to the provider body just
before it is sent, passthrough or translated alike, since the upstream refuses either without."""

from __future__ import annotations

from typing import Any

from omniroute.catalog import RequestRules, provider_type
from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Json

NO_RULES = RequestRules()


def rules_of(target: executor_pb2.Target) -> RequestRules:
    kind = provider_type(target.provider_type)
    return kind.request if kind else NO_RULES


def apply(rules: RequestRules, body: Json) -> None:
    if rules.system_prefix:
        _prefix_system(body, rules.system_prefix)
    if rules.instructions:
        _ensure_instructions(body, rules.instructions)
    for name in rules.drop:
        body.pop(name, None)
    body.update(rules.fields)


def _prefix_system(body: Json, prefix: str) -> None:
    """Anthropic's `system` (absent, a string or a list of text blocks) made to start with
    `prefix` as a block of its own, unless it already does."""
    system = body.get("system")
    block = {"type": "text", "text": prefix}
    if isinstance(system, str) and system:
        if not system.startswith(prefix):
            body["system"] = [block, {"type": "text", "text": system}]
    elif isinstance(system, list) and system:
        first = system[0]
        if not (isinstance(first, dict) and first.get("text") == prefix):
            body["system"] = [block, *system]
    else:
        body["system"] = [block]


def _ensure_instructions(body: Json, default: str) -> None:
    """Responses' top-level `instructions`: the caller's own; else its system messages, moved
    out of `input` (such an API reads the system prompt only there); else `default`."""
    given = body.get("instructions")
    if isinstance(given, str) and given.strip():
        return
    items = body.get("input")
    system: list[str] = []
    if isinstance(items, list):
        system = [_text(item.get("content")) for item in items
                  if isinstance(item, dict) and item.get("role") == "system"]
        body["input"] = [item for item in items if not (isinstance(item, dict) and item.get("role") == "system")]
    body["instructions"] = "\n\n".join(t for t in system if t) or default


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""
