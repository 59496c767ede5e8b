"""OpenAI Responses (`POST /v1/responses`) ↔ canonical: requests, answers and errors.

Streams are in openai_responses_stream.py (re-exported here). The gateway is stateless per
request, so `previous_response_id` (server-side conversation state) is refused with a 400 —
clients such as Codex send the whole history with `store: false`, which works. Built-in tools
(web_search, file_search…) run only at OpenAI and are not carried to other providers. The
Responses API has no `stop`, `seed` or `n`: those canonical fields are not sent to it.

What Codex sends, and what other providers get of it:
- `custom` (freeform) tools and `local_shell` become function tools (one string parameter
  `input`; local_shell's exec action), and their calls in the history (`custom_tool_call`,
  `local_shell_call`) become tool calls with those arguments, so the history stays whole. The
  tools of a `namespace` are declared one by one, under their own names.
- Items only OpenAI can read (web_search_call, image_generation_call, tool_search_*,
  compaction, item_reference …) and reasoning's `encrypted_content` are dropped with a debug
  log: the conversation around them still means the same.
- Top-level fields not translated here (include, prompt_cache_key, service_tier, text.verbosity
  …) travel as `x_omniroute.native_fields` and come back for a Responses upstream.
"""

from __future__ import annotations

import logging
from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import FormatError
from omniroute.formats.openai_chat import error_body, parse_error
from omniroute.formats.openai_responses_stream import (
    StreamDecoder,
    StreamEncoder,
    call_item,
    finish_to_canonical,
    message_item,
    reasoning_item,
    response_object,
    usage_to_canonical,
)

FORMAT = "openai_responses"
STREAM_TERMINATOR = None

__all__ = [
    "StreamDecoder", "StreamEncoder", "canonical_to_request", "canonical_to_response",
    "error_body", "parse_error", "request_to_canonical", "response_to_canonical",
]

Json = dict[str, Any]

log = logging.getLogger("omniroute.formats.openai_responses")

# The top-level fields request_to_canonical translates; any other is carried as a native field.
_TRANSLATED = frozenset({
    "model", "input", "instructions", "stream", "temperature", "top_p", "parallel_tool_calls",
    "user", "metadata", "max_output_tokens", "reasoning", "tools", "tool_choice",
    "previous_response_id"})
# local_shell's exec action, as a function tool's parameters for other providers.
_LOCAL_SHELL_PARAMETERS: Json = {
    "type": "object", "required": ["command"],
    "properties": {"command": {"type": "array", "items": {"type": "string"}},
                   "workdir": {"type": "string"}, "timeout_ms": {"type": "integer"},
                   "env": {"type": "object"}}}
_CUSTOM_PARAMETERS: Json = {"type": "object", "required": ["input"],
                            "properties": {"input": {"type": "string"}}}


# --- request: Responses → canonical ----------------------------------------------------------

def request_to_canonical(body: Any, *, model: str | None = None,
                         stream: bool | None = None) -> Json:
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("Missing required parameter: 'model'.", param="model",
                          code="missing_required_parameter")
    if body.get("previous_response_id"):
        raise FormatError("previous_response_id is not supported: send the full input "
                          "(store=false).", param="previous_response_id",
                          code="unsupported_parameter")
    messages: list[Json] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(_input_to_messages(body.get("input")))
    if not messages:
        raise FormatError("Missing required parameter: 'input'.", param="input",
                          code="missing_required_parameter")
    canonical: Json = {"model": model, "messages": messages}
    stream = stream if stream is not None else body.get("stream")
    if stream is not None:
        canonical["stream"] = bool(stream)
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "metadata"):
        if body.get(key) is not None:
            canonical[key] = body[key]
    if body.get("max_output_tokens") is not None:
        canonical["max_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning") or {}
    effort = reasoning.get("effort")
    if isinstance(effort, str):
        canonical["reasoning_effort"] = effort
        c.set_ext(canonical, "include_thoughts", reasoning.get("summary") is not None)
    _tools_to_canonical(body, canonical)
    text: Json = body["text"] if isinstance(body.get("text"), dict) else {}
    _text_format_to_canonical(text.get("format"), canonical)
    native = {k: v for k, v in body.items() if k not in _TRANSLATED and k != "text"}
    text_controls = {k: v for k, v in text.items() if k != "format"}  # verbosity …
    if text_controls:
        native["text"] = text_controls
    c.set_native_fields(canonical, FORMAT, native)
    return canonical


def _input_to_messages(value: Any) -> list[Json]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if value else []
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError("'input' must be a string or an array of items", param="input")
    messages: list[Json] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise FormatError(f"input[{index}] must be an object", param=f"input[{index}]")
        _add_item(messages, item, index)
    return messages


def _open_assistant(messages: list[Json]) -> Json:
    """The assistant message that reasoning, text and calls of one turn accumulate into."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[-1]
    messages.append({"role": "assistant", "content": None})
    return messages[-1]


def _add_item(messages: list[Json], item: Json, index: int) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise FormatError(f"input[{index}].role is invalid", param=f"input[{index}].role")
        if role == "assistant":
            target = _open_assistant(messages)
            target["content"] = (target["content"] or "") + c.content_text(item.get("content"))
        else:
            messages.append({"role": role, "content": _content_to_canonical(item.get("content"))})
    elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
        if kind == "custom_tool_call":
            name, arguments = str(item.get("name", "")), c.dumps({"input": str(item.get("input", ""))})
        elif kind == "local_shell_call":
            name, arguments = "local_shell", c.dumps(item.get("action") or {})
        else:
            name, arguments = str(item.get("name", "")), str(item.get("arguments") or "")
        target = _open_assistant(messages)
        target.setdefault("tool_calls", []).append(
            {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
             "function": {"name": name, "arguments": arguments}})
    elif kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        messages.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")),
                         "content": output if isinstance(output, str)
                         else _content_to_canonical(output)})
    elif kind == "reasoning":
        text = "".join(str(s.get("text", "")) for s in item.get("summary") or []
                       if isinstance(s, dict))
        if item.get("encrypted_content"):
            log.debug("input[%d]: reasoning's encrypted_content is carried only to OpenAI", index)
        target = _open_assistant(messages)
        target["reasoning_content"] = target.get("reasoning_content", "") + text
    elif isinstance(kind, str) and kind:
        # Built-in tool calls and their results, compaction, item references: only OpenAI
        # can read them.
        log.debug("input[%d]: a %r item is carried only to OpenAI Responses", index, kind)
    else:
        raise FormatError(f"input[{index}].type must be a string", param=f"input[{index}].type")


def _content_to_canonical(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    parts: list[Json] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image" and part.get("image_url"):
            image: Json = {"type": "image_url", "image_url": {"url": str(part["image_url"])}}
            if part.get("detail"):
                image["image_url"]["detail"] = part["detail"]
            parts.append(image)
        elif kind == "input_file" and part.get("file_data"):
            parts.append({"type": "file", "file": {"file_data": part["file_data"],
                                                   "filename": part.get("filename", "")}})
    return parts


def _tools_to_canonical(body: Json, canonical: Json) -> None:
    tools = [tool for t in _flat_tools(body.get("tools") or [])
             if (tool := _tool_to_canonical(t)) is not None]
    if tools:
        canonical["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        canonical["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        canonical["tool_choice"] = c.tool_choice_canonical("function", choice.get("name"))


def _flat_tools(tools: list[Any]) -> list[Any]:
    """Tools with each `namespace` (Codex's group of tools, e.g. its sub-agent tools) replaced
    by the tools inside it: other providers have no namespaces, the model calls them by name."""
    flat: list[Any] = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            flat.extend(_flat_tools(tool["tools"]))
        else:
            flat.append(tool)
    return flat


def _tool_to_canonical(tool: Any) -> Json | None:
    """A function tool as it is; a custom (freeform) or local_shell tool as the function tool
    another provider can call; None for a built-in tool only OpenAI runs (web_search …)."""
    if not isinstance(tool, dict):
        return None
    kind = tool.get("type")
    if kind == "function":
        return {"type": "function", "function": {
            k: v for k, v in (("name", tool.get("name")), ("description", tool.get("description")),
                              ("parameters", tool.get("parameters")), ("strict", tool.get("strict")))
            if v is not None}}
    if kind == "custom":
        description = str(tool.get("description") or "")
        return {"type": "function", "function": {
            "name": str(tool.get("name", "")), "parameters": _CUSTOM_PARAMETERS,
            "description": (description + "\n\nPut the whole input in `input`.").strip()}}
    if kind == "local_shell":
        return {"type": "function", "function": {
            "name": "local_shell", "parameters": _LOCAL_SHELL_PARAMETERS,
            "description": "Run a command in the local shell; command is the argv list."}}
    log.debug("tools: a %r tool is carried only to OpenAI Responses", kind)
    return None


def _text_format_to_canonical(fmt: Any, canonical: Json) -> None:
    if not isinstance(fmt, dict):
        return
    if fmt.get("type") == "json_object":
        canonical["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        canonical["response_format"] = {"type": "json_schema", "json_schema": spec}


# --- request: canonical → Responses ----------------------------------------------------------

def canonical_to_request(canonical: Json, model: str) -> Json:
    system, rest = c.split_system(canonical.get("messages") or [])
    body: Json = {"model": model, "input": [i for m in rest for i in _message_to_items(m)],
                  "store": False}
    if system:
        body["instructions"] = "\n\n".join(str(p.get("text", "")) for p in system)
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "metadata"):
        if canonical.get(key) is not None:
            body[key] = canonical[key]
    if c.max_output_tokens(canonical) is not None:
        body["max_output_tokens"] = c.max_output_tokens(canonical)
    effort = canonical.get("reasoning_effort")
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
        # Canonical reasoning is visible text (reasoning_content); Responses only returns it
        # as a summary, and only when one is asked for.
        if c.ext(canonical).get("include_thoughts", effort != "none"):
            body["reasoning"]["summary"] = "auto"
    tools = [{"type": "function", **c.strip_extensions(f)} for f in c.function_tools(canonical)]
    if tools:
        body["tools"] = tools
    choice = c.tool_choice_of(canonical)
    if choice is not None:
        body["tool_choice"] = {"type": "function", "name": choice[1]} if choice[0] == "function" \
            else choice[0]
    fmt = canonical.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    if canonical.get("stream"):
        body["stream"] = True
    for key, value in c.native_fields(canonical, FORMAT).items():
        if key == "text" and isinstance(value, dict):
            body["text"] = {**value, **body.get("text", {})}
        else:
            body.setdefault(key, value)
    return body


def _message_to_items(message: Json) -> list[Json]:
    role = message.get("role")
    if role == "tool":
        content = message.get("content")
        return [{"type": "function_call_output", "call_id": str(message.get("tool_call_id", "")),
                 "output": content if isinstance(content, str) else c.content_text(content)}]
    if role == "assistant":
        items: list[Json] = []
        text = c.content_text(message.get("content"))
        if text:
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": text}]})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            items.append({"type": "function_call", "call_id": str(call.get("id", "")),
                          "name": str(function.get("name", "")),
                          "arguments": str(function.get("arguments") or "")})
        return items
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "message", "role": role or "user", "content": content}]
    return [{"type": "message", "role": role or "user",
             "content": [_part_to_input(p) for p in c.content_parts(content)]}]


def _part_to_input(part: Json) -> Json:
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": c.image_url_of(part),
                "detail": image.get("detail", "auto") if isinstance(image, dict) else "auto"}
    if part.get("type") == "file":
        file = part.get("file") or {}
        return {"type": "input_file", "file_data": file.get("file_data", ""),
                "filename": file.get("filename") or "file"}
    return {"type": "input_text", "text": str(part.get("text", ""))}


# --- answers ---------------------------------------------------------------------------------

def response_to_canonical(body: Any) -> Json:
    if not isinstance(body, dict) or not isinstance(body.get("output"), list):
        raise FormatError("upstream answer is not a Responses object", status=502)
    messages: list[Json] = []
    for index, item in enumerate(body["output"]):
        if isinstance(item, dict) and item.get("type") in ("message", "function_call",
                                                            "reasoning"):
            if item.get("type") == "message":
                item = {**item, "content": [p for p in item.get("content") or []
                                            if p.get("type") in ("output_text", "refusal")]}
                item["content"] = [{"type": "output_text",
                                    "text": p.get("text") or p.get("refusal") or ""}
                                   for p in item["content"]]
            _add_item(messages, item, index)
    message = messages[0] if messages else {"role": "assistant", "content": ""}
    finish = finish_to_canonical(body, bool(message.get("tool_calls")))
    return c.response(id_=str(body.get("id", "")), model=str(body.get("model", "")),
                      created=int(body.get("created_at") or c.now()), message=message,
                      finish_reason=finish, usage=usage_to_canonical(body.get("usage")))


def canonical_to_response(canonical: Json) -> Json:
    choice = (canonical.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[Json] = []
    if message.get("reasoning_content"):
        output.append(reasoning_item(c.new_id("rs_"), str(message["reasoning_content"])))
    text = c.content_text(message.get("content"))
    if text:
        output.append(message_item(c.new_id("msg_"), text))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(call_item(c.new_id("fc_"), str(call.get("id", "")),
                                str(function.get("name", "")), str(function.get("arguments") or "")))
    response_id = str(canonical.get("id", ""))
    return response_object(
        id_=response_id if response_id.startswith("resp_") else f"resp_{response_id}",
        model=str(canonical.get("model", "")), created=int(canonical.get("created") or c.now()),
        output=output, finish=choice.get("finish_reason"),
        usage=c.Usage.from_openai(canonical.get("usage")))
