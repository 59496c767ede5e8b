"""Anthropic Messages (`POST /v1/messages`) ↔ canonical: requests, answers and errors.

Streams are in anthropic_stream.py (re-exported here so that every format module has the
same interface).

Choices worth knowing:
- System instructions: the top-level `system`, and `{"role": "system"}` messages inside
  `messages` (mid-conversation system messages, sent by Claude Code for models it does not
  know). Both become canonical system messages at their position; the ones that came from
  inside `messages` are marked (`x_omniroute.mid_conversation`) and go back there for an
  Anthropic upstream, every other system/developer message joins the top-level `system`
  (older models refuse system turns). Their non-text content (tool additions, per-turn
  effort statements) is not portable: a tool addition joins the canonical tools, the rest is
  dropped with a debug log.
- Content blocks only Anthropic can run or read (server tool use and results, container
  uploads …) are dropped with a debug log instead of refused: the rest of the request still
  means the same to another provider.
- Top-level fields this module does not translate (context_management, container,
  service_tier, …) travel as `x_omniroute.native_fields` and come back for an Anthropic
  upstream (when the caller's body is not passed through as it is anyway).
- Anthropic wants tool results as `tool_result` blocks inside a user turn and (on older
  models) strictly alternating roles, so consecutive same-role turns are merged.
- Thinking blocks go upstream only with their signature (Anthropic rejects unsigned ones), so
  reasoning that came from another provider is not replayed.
- Structured output is a forced tool (`JSON_TOOL_NAME`) whose input is the JSON answer; the
  decoders turn that tool call back into text content with finish_reason "stop".
- With thinking enabled Anthropic refuses temperature, top_k, top_p < 0.95 and forced tool
  use: those are dropped / relaxed to `auto`.
"""

from __future__ import annotations

import logging
from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.anthropic_stream import (
    STOP_FROM_CANONICAL,
    STOP_TO_CANONICAL,
    StreamDecoder,
    StreamEncoder,
    error_body,
    error_type_for_status,
    parse_error,
    usage_from_canonical,
    usage_to_canonical,
)
from omniroute.formats.errors import FormatError

FORMAT = "anthropic"
STREAM_TERMINATOR = None
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024

__all__ = [
    "StreamDecoder", "StreamEncoder", "canonical_to_request", "canonical_to_response",
    "error_body", "error_type_for_status", "parse_error", "request_to_canonical",
    "response_to_canonical", "usage_from_canonical", "usage_to_canonical",
]

Json = dict[str, Any]

log = logging.getLogger("omniroute.formats.anthropic")

# output_config.effort → reasoning_effort, and back (xhigh and max have no portable name).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_EFFORT_TO_ANTHROPIC = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
                        "xhigh": "xhigh"}
# thinking.type values without a budget: kept for an Anthropic upstream (x_omniroute.thinking_mode).
_THINKING_MODES = ("adaptive", "disabled", "between_tools")
# The top-level fields request_to_canonical translates; any other is carried as a native field.
_TRANSLATED = frozenset({
    "model", "messages", "system", "stream", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "metadata", "cache_control", "output_config", "output_format", "tools",
    "tool_choice", "thinking"})


# --- request: Anthropic → canonical ----------------------------------------------------------

def request_to_canonical(body: Any, *, model: str | None = None,
                         stream: bool | None = None) -> Json:
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("model: Field required", param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise FormatError("messages: at least one message is required", param="messages")
    messages = _system_to_canonical(body.get("system"))
    for index, message in enumerate(body["messages"]):
        messages.extend(_message_to_canonical(message, index))
    if all(message["role"] == "system" for message in messages):
        raise FormatError("messages: at least one user or assistant message with content is "
                          "required", param="messages")
    canonical: Json = {"model": model, "messages": messages}
    stream = stream if stream is not None else body.get("stream")
    if stream is not None:
        canonical["stream"] = bool(stream)
    _sampling_to_canonical(body, canonical)
    _tools_to_canonical(body, canonical)
    _thinking_to_canonical(body, canonical)
    _tool_additions_to_canonical(body["messages"], canonical)
    c.set_native_fields(canonical, FORMAT, {k: v for k, v in body.items() if k not in _TRANSLATED})
    return canonical


def _system_to_canonical(system: Any) -> list[Json]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise FormatError("system: must be a string or an array of text blocks", param="system")
    parts = [_text_part(block) for block in system
             if isinstance(block, dict) and block.get("type") == "text"]
    return [{"role": "system", "content": parts}]


def _text_part(block: Json) -> Json:
    part: Json = {"type": "text", "text": str(block.get("text", ""))}
    c.set_ext(part, "cache_control", block.get("cache_control"))
    return part


def _message_to_canonical(message: Any, index: int) -> list[Json]:
    param = f"messages.{index}"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
        raise FormatError(f"{param}.role: must be 'user', 'assistant' or 'system'", param=param)
    content = message.get("content")
    if message["role"] == "system":
        return _system_message_to_canonical(message, param)
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise FormatError(f"{param}.content: must be a string or an array", param=param)
    if message["role"] == "assistant":
        return [_assistant_to_canonical(content, param)]
    return _user_to_canonical(content, param)


def _system_message_to_canonical(message: Json, param: str) -> list[Json]:
    """A mid-conversation system message → a canonical system message at the same position
    (none when it carries no text, e.g. a per-turn effort statement or only tool changes)."""
    content = message.get("content")
    if isinstance(content, str):
        parts = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        parts = [_text_part(block) for block in content
                 if isinstance(block, dict) and block.get("type") == "text" and block.get("text")]
        others = sorted({str(block.get("type")) for block in content
                         if isinstance(block, dict) and block.get("type") != "text"})
        if others:
            log.debug("%s: system message blocks %s are carried only to Anthropic", param, others)
    else:
        raise FormatError(f"{param}.content: must be a string or an array", param=param)
    if not parts:
        return []
    canonical: Json = {"role": "system", "content": parts}
    c.set_ext(canonical, "mid_conversation", True)
    c.set_ext(canonical, "cache_control", message.get("cache_control"))
    return [canonical]


def _tool_additions_to_canonical(messages: list[Any], canonical: Json) -> None:
    """Tools that system messages add mid-conversation (`tool_addition` blocks) are declared
    from the start for other providers, which fix the tool list per request."""
    declared = {tool["function"]["name"] for tool in canonical.get("tools") or []}
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "system" \
                or not isinstance(message.get("content"), list):
            continue
        for block in message["content"]:
            definition = ((block.get("tool") or {}).get("definition")
                          if isinstance(block, dict) and block.get("type") == "tool_addition" else None)
            if isinstance(definition, dict) and definition.get("name") not in declared:
                converted = _tool_to_canonical(definition)
                if converted is not None:
                    declared.add(definition.get("name"))
                    canonical.setdefault("tools", []).append(converted)


def _user_to_canonical(blocks: list[Any], param: str) -> list[Json]:
    # Tool results first (they answer the previous assistant turn), then the user's content.
    tool_messages: list[Json] = []
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            tool_messages.append(_tool_result_to_canonical(block, param))
        elif kind is not None:
            if (part := _block_to_part(block, param)) is not None:
                parts.append(part)
        else:
            raise FormatError(f"{param}.content: every block needs a 'type'", param=param)
    if parts:
        tool_messages.append({"role": "user", "content": parts})
    return tool_messages


def _block_to_part(block: Json, param: str) -> Json | None:
    """A user content block → a canonical content part; None for a block only Anthropic can
    read (server tool results, container uploads …), dropped with a debug log."""
    kind = block.get("type")
    if kind == "text":
        return _text_part(block)
    if kind == "search_result":
        texts = [str(b.get("text", "")) for b in block.get("content") or [] if isinstance(b, dict)]
        return {"type": "text", "text": "\n".join([str(block.get("title", "")), *texts]).strip()}
    if kind in ("image", "document"):
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = c.data_url(str(source.get("media_type", "")), str(source.get("data", "")))
        elif source.get("type") == "url":
            url = str(source.get("url", ""))
        else:
            raise FormatError(f"{param}: unsupported {kind} source type {source.get('type')!r}",
                              param=param)
        if kind == "document":
            part: Json = {"type": "file", "file": {"file_data": url}}
            c.set_ext(part, "cache_control", block.get("cache_control"))
            return part
        return c.image_part(url, {"cache_control": block["cache_control"]}
                            if block.get("cache_control") else None)
    log.debug("%s: a %r block is carried only to Anthropic", param, kind)
    return None


def _tool_result_to_canonical(block: Json, param: str) -> Json:
    content = block.get("content")
    value: Any
    if isinstance(content, list):
        value = [part for b in content if isinstance(b, dict)
                 if (part := _block_to_part(b, param)) is not None]
        if all(p.get("type") == "text" and c.EXT not in p for p in value):
            value = "".join(p["text"] for p in value)
    else:
        value = "" if content is None else str(content)
    message: Json = {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                     "content": value}
    if block.get("is_error"):
        c.set_ext(message, "is_error", True)
    c.set_ext(message, "cache_control", block.get("cache_control"))
    return message


def _assistant_to_canonical(blocks: list[Any], param: str) -> Json:
    message: Json = {"role": "assistant"}
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[Json] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
            c.set_ext(message, "reasoning_signature", block.get("signature") or None)
        elif kind == "redacted_thinking":
            message.setdefault(c.EXT, {}).setdefault("redacted_reasoning", []).append(
                str(block.get("data", "")))
        elif kind == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function",
                          "function": {"name": str(block.get("name", "")),
                                       "arguments": c.dumps(block.get("input") or {})}})
        else:  # server tool use and its results: Anthropic ran them, no one else can
            log.debug("%s: a %r block is carried only to Anthropic", param, kind)
    message["content"] = "".join(texts) if texts or not calls else None
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def _sampling_to_canonical(body: Json, canonical: Json) -> None:
    for key in ("temperature", "top_p", "max_tokens"):
        if body.get(key) is not None:
            canonical[key] = body[key]
    if body.get("stop_sequences"):
        canonical["stop"] = list(body["stop_sequences"])
    c.set_ext(canonical, "top_k", body.get("top_k"))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        canonical["user"] = str(metadata["user_id"])
    c.set_ext(canonical, "cache_control", body.get("cache_control"))
    output_format = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(output_format, dict) and isinstance(output_format.get("schema"), dict):
        canonical["response_format"] = c.json_schema_format(output_format["schema"])


def _tools_to_canonical(body: Json, canonical: Json) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise FormatError("tools: must be an array", param="tools")
    converted = [entry for tool in tools or [] if (entry := _tool_to_canonical(tool)) is not None]
    if converted:
        canonical["tools"] = converted
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        mode = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}.get(
            str(choice.get("type")), "auto")
        canonical["tool_choice"] = c.tool_choice_canonical(mode, choice.get("name"))
        if choice.get("disable_parallel_tool_use"):
            canonical["parallel_tool_calls"] = False


def _tool_to_canonical(tool: Any) -> Json | None:
    # Server tools (web_search_…, bash_…) have a versioned `type` and no schema: only
    # Anthropic can run them, so they are not carried to other providers.
    if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
        return None
    function: Json = {"name": str(tool.get("name", "")),
                      "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    entry: Json = {"type": "function", "function": function}
    c.set_ext(entry, "cache_control", tool.get("cache_control"))
    return entry


def _thinking_to_canonical(body: Json, canonical: Json) -> None:
    """thinking + output_config.effort → reasoning_effort (the portable intent).

    - enabled: the budget, exactly (thinking_budget) and as an effort;
    - adaptive / between_tools: the model decides; an explicit effort is passed on, none is
      asked for otherwise (other providers then use their own default);
    - disabled: nothing is asked for.
    The mode itself is kept (thinking_mode) for an Anthropic upstream; display "omitted" means
    the caller does not want the thinking text (include_thoughts false)."""
    thinking = body.get("thinking")
    effort = (body.get("output_config") or {}).get("effort")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int):
            canonical["reasoning_effort"] = c.budget_to_effort(budget)
            c.set_ext(canonical, "thinking_budget", budget)
    elif kind in _THINKING_MODES:
        c.set_ext(canonical, "thinking_mode", kind)
    if effort in _EFFORTS:
        c.set_ext(canonical, "anthropic_effort", effort)
        if kind != "disabled" and "reasoning_effort" not in canonical:
            canonical["reasoning_effort"] = _EFFORTS[str(effort)]
    if isinstance(thinking, dict) and thinking.get("display") in ("omitted", "summarized"):
        c.set_ext(canonical, "include_thoughts", thinking["display"] == "summarized")


# --- request: canonical → Anthropic ----------------------------------------------------------

def canonical_to_request(canonical: Json, model: str) -> Json:
    system, rest = _split_system(canonical.get("messages") or [])
    body: Json = {"model": model, "messages": _messages_to_anthropic(rest)}
    if system:
        body["system"] = _system_to_anthropic(system)
    thinking = _thinking_to_anthropic(canonical, body)
    _sampling_to_anthropic(canonical, body, thinking=thinking)
    _tools_to_anthropic(canonical, body, thinking=thinking)
    if canonical.get("stream"):
        body["stream"] = True
    for key, value in c.native_fields(canonical, FORMAT).items():
        body.setdefault(key, value)
    return body


def _split_system(messages: list[Json]) -> tuple[list[Json], list[Json]]:
    """(parts of the top-level system prompt, the messages): a system message that came from
    inside an Anthropic `messages` (marked mid_conversation) stays at its position when a
    conversation turn precedes it; every other system/developer message joins the prompt."""
    system: list[Json] = []
    rest: list[Json] = []
    for message in messages:
        if message.get("role") not in ("system", "developer"):
            rest.append(message)
        elif rest and c.ext(message).get("mid_conversation"):
            rest.append(message)
        else:
            system.extend(c.content_parts(message.get("content")))
    return system, rest


def _thinking_to_anthropic(canonical: Json, body: Json) -> bool:
    """Sets thinking (and max_tokens, and output_config.effort for adaptive thinking); True
    when thinking is on, which restricts sampling and tool choice."""
    extension = c.ext(canonical)
    mode = extension.get("thinking_mode")
    max_tokens = c.max_output_tokens(canonical)
    effort = canonical.get("reasoning_effort")
    # The caller's own output_config.effort (Anthropic) is sent as it was; from another format
    # an effort is sent only with adaptive thinking (manual thinking has a budget instead).
    if extension.get("anthropic_effort") in _EFFORTS:
        body["output_config"] = {"effort": extension["anthropic_effort"]}
    elif mode in ("adaptive", "between_tools") and effort in _EFFORT_TO_ANTHROPIC:
        body["output_config"] = {"effort": _EFFORT_TO_ANTHROPIC[str(effort)]}
    if mode in _THINKING_MODES:
        body["thinking"] = {"type": mode}
        if mode != "disabled" and extension.get("include_thoughts") is False:
            body["thinking"]["display"] = "omitted"
        body["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
        return mode != "disabled"
    budget = _thinking_budget(canonical) if "anthropic_effort" not in extension \
        or "thinking_budget" in extension else None
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        max_tokens = max_tokens or budget + DEFAULT_MAX_TOKENS
    body["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
    return bool(budget)


def _thinking_budget(canonical: Json) -> int | None:
    """The budget to send, or None. Anthropic needs 1024 ≤ budget < max_tokens."""
    budget = c.requested_budget(canonical)
    if not budget or budget <= 0:
        return None
    budget = max(budget, MIN_THINKING_BUDGET)
    max_tokens = c.max_output_tokens(canonical)
    if max_tokens is not None and budget >= max_tokens:
        budget = max_tokens - 1
    return budget if budget >= MIN_THINKING_BUDGET else None


def _system_to_anthropic(parts: list[Json]) -> Any:
    if all(c.EXT not in part for part in parts):
        return "\n\n".join(str(part.get("text", "")) for part in parts)
    return [_text_block(part) for part in parts if part.get("type") == "text"]


def _text_block(part: Json) -> Json:
    block: Json = {"type": "text", "text": str(part.get("text", ""))}
    if c.ext(part).get("cache_control"):
        block["cache_control"] = c.ext(part)["cache_control"]
    return block


def _messages_to_anthropic(messages: list[Json]) -> list[Json]:
    turns: list[Json] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):  # mid-conversation (see _split_system)
            turn = {"role": "system", "content": _system_blocks(message)}
        elif role == "assistant":
            turn = {"role": "assistant", "content": _assistant_blocks(message)}
        elif role == "tool":
            turn = {"role": "user", "content": [_tool_result_block(message)]}
        else:
            turn = {"role": "user", "content": _user_blocks(message.get("content"))}
        if not turn["content"]:
            continue
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["content"] = _as_blocks(turns[-1]["content"]) + _as_blocks(turn["content"])
        else:
            turns.append(turn)
    return turns


def _system_blocks(message: Json) -> list[Json]:
    blocks = [_text_block(part) for part in c.content_parts(message.get("content"))
              if part.get("type") == "text" and part.get("text")]
    if blocks and c.ext(message).get("cache_control"):
        blocks[-1]["cache_control"] = c.ext(message)["cache_control"]
    return blocks


def _as_blocks(content: Any) -> list[Json]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _user_blocks(content: Any) -> Any:
    if isinstance(content, str):
        return content
    return [block for part in c.content_parts(content) if (block := _part_to_block(part))]


def _part_to_block(part: Json) -> Json | None:
    kind = part.get("type")
    block: Json | None = None
    if kind in ("text", "input_text") and part.get("text"):
        block = {"type": "text", "text": str(part["text"])}
    elif kind == "image_url":
        block = {"type": "image", "source": _source(c.image_url_of(part))}
    elif kind == "file":
        file = part.get("file") or {}
        block = {"type": "document", "source": _source(str(file.get("file_data", "")))}
    if block is not None and c.ext(part).get("cache_control"):
        block["cache_control"] = c.ext(part)["cache_control"]
    return block


def _source(url: str) -> Json:
    parsed = c.parse_data_url(url)
    if parsed:
        return {"type": "base64", "media_type": parsed[0], "data": parsed[1]}
    return {"type": "url", "url": url}


def _tool_result_block(message: Json) -> Json:
    content = message.get("content")
    block: Json = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id", ""))}
    if isinstance(content, list):
        block["content"] = [b for part in c.content_parts(content) if (b := _part_to_block(part))]
    else:
        block["content"] = "" if content is None else str(content)
    if c.ext(message).get("is_error"):
        block["is_error"] = True
    if c.ext(message).get("cache_control"):
        block["cache_control"] = c.ext(message)["cache_control"]
    return block


def _assistant_blocks(message: Json) -> list[Json]:
    blocks: list[Json] = []
    message_ext = c.ext(message)
    signature = message_ext.get("reasoning_signature")
    if message.get("reasoning_content") and signature:
        blocks.append({"type": "thinking", "thinking": message["reasoning_content"],
                       "signature": signature})
    for data in message_ext.get("redacted_reasoning") or []:
        blocks.append({"type": "redacted_thinking", "data": data})
    text = c.content_text(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": str(call.get("id", "")),
                       "name": str(function.get("name", "")),
                       "input": c.loads_object(function.get("arguments"))})
    return blocks


def _sampling_to_anthropic(canonical: Json, body: Json, *, thinking: bool) -> None:
    temperature = canonical.get("temperature")
    top_p = canonical.get("top_p")
    top_k = c.ext(canonical).get("top_k")
    if not thinking:
        if isinstance(temperature, int | float):
            body["temperature"] = min(float(temperature), 1.0)  # OpenAI allows up to 2
        if isinstance(top_k, int):
            body["top_k"] = top_k
    if isinstance(top_p, int | float) and (not thinking or top_p >= 0.95):
        body["top_p"] = top_p
    stop = c.stop_list(canonical)
    if stop:
        body["stop_sequences"] = stop
    if canonical.get("user"):
        body["metadata"] = {"user_id": str(canonical["user"])}
    if c.ext(canonical).get("cache_control"):
        body["cache_control"] = c.ext(canonical)["cache_control"]


def _tools_to_anthropic(canonical: Json, body: Json, *, thinking: bool) -> None:
    tools = [_tool_to_anthropic(function) for function in c.function_tools(canonical)]
    choice = c.tool_choice_of(canonical)
    kind, schema, _ = c.response_format_of(canonical)
    if kind in ("json_object", "json_schema"):
        tools.append({"name": c.JSON_TOOL_NAME,
                      "description": "Reply with the final answer as this tool's input.",
                      "input_schema": schema or {"type": "object"}})
        forced = ("required", None) if len(tools) > 1 else ("function", c.JSON_TOOL_NAME)
        choice = choice if choice and choice[0] == "function" else forced
    if not tools:
        return
    body["tools"] = tools
    tool_choice: Json = {"type": "auto"}
    if choice is not None:
        mode, name = choice
        tool_choice = {"type": {"required": "any", "function": "tool"}.get(mode, mode)}
        if mode == "function":
            tool_choice["name"] = name
    if thinking and tool_choice["type"] in ("any", "tool"):
        tool_choice = {"type": "auto"}
    if canonical.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
        tool_choice["disable_parallel_tool_use"] = True
    body["tool_choice"] = tool_choice


def _tool_to_anthropic(function: Json) -> Json:
    tool: Json = {"name": str(function.get("name", "")),
                  "input_schema": function.get("parameters") or {"type": "object",
                                                                 "properties": {}}}
    if function.get("description"):
        tool["description"] = function["description"]
    if c.ext(function).get("cache_control"):
        tool["cache_control"] = c.ext(function)["cache_control"]
    return tool


# --- answers ---------------------------------------------------------------------------------

def response_to_canonical(body: Any) -> Json:
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise FormatError("upstream answer is not an Anthropic message", status=502)
    message = _assistant_to_canonical(
        [b for b in body["content"] if isinstance(b, dict)
         and b.get("type") in ("text", "thinking", "redacted_thinking", "tool_use")], "content")
    finish = STOP_TO_CANONICAL.get(str(body.get("stop_reason")), "stop")
    finish = _unwrap_json_tool(message, finish)
    return c.response(id_=str(body.get("id") or c.new_id("msg_")), model=str(body.get("model", "")),
                      created=c.now(), message=message, finish_reason=finish,
                      usage=usage_to_canonical(body.get("usage")))


def _unwrap_json_tool(message: Json, finish: str) -> str:
    """The structured-output tool call becomes the answer's text content."""
    calls = message.get("tool_calls") or []
    json_calls = [call for call in calls if call["function"]["name"] == c.JSON_TOOL_NAME]
    if not json_calls:
        return finish
    message["content"] = (message.get("content") or "") + json_calls[0]["function"]["arguments"]
    rest = [call for call in calls if call not in json_calls]
    if rest:
        message["tool_calls"] = rest
        return finish
    message.pop("tool_calls", None)
    return "stop" if finish == "tool_calls" else finish


def canonical_to_response(canonical: Json) -> Json:
    choice = (canonical.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    blocks = _assistant_blocks(message)
    if message.get("reasoning_content") and not c.ext(message).get("reasoning_signature"):
        # Unsigned reasoning (from another provider) still shows to an Anthropic client.
        blocks.insert(0, {"type": "thinking", "thinking": message["reasoning_content"],
                          "signature": ""})
    msg_id = str(canonical.get("id", ""))
    return {"id": msg_id if msg_id.startswith("msg_") else c.new_id("msg_"), "type": "message",
            "role": "assistant", "model": str(canonical.get("model", "")), "content": blocks,
            "stop_reason": STOP_FROM_CANONICAL.get(str(choice.get("finish_reason")), "end_turn"),
            "stop_sequence": None,
            "usage": usage_from_canonical(c.Usage.from_openai(canonical.get("usage")))}
