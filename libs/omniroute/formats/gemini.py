"""Gemini generateContent (`/v1beta/models/{model}:generateContent`) ↔ canonical.

Streams are in gemini_stream.py (re-exported here). The REST API is camelCase; the
google-genai SDK sends camelCase too, but other clients send snake_case, so every field is
read under both spellings (`_get`) and written in camelCase.

Choices worth knowing:
- The model and the stream flag come from the URL, hence the keyword arguments.
- Older Gemini answers have no function-call ids: ids are synthesized deterministically, and
  function responses are matched to calls by id when present, else by name in call order.
- Tool schemas and response schemas are sent as `parametersJsonSchema` / `responseJsonSchema`
  (full JSON Schema) rather than the OpenAPI-subset fields, which reject common keywords.
- Gemini 3 validates thought signatures on replayed function calls; calls that come from
  another provider carry Gemini's documented placeholder `skip_thought_signature_validator`.
- What only Gemini can read (code execution parts, built-in tools such as googleSearch,
  safetySettings, cachedContent, labels, generationConfig keys without a canonical meaning …)
  is not refused: parts and tools are dropped with a debug log, top-level fields and
  generationConfig keys travel as `x_omniroute.native_fields` and come back for a Gemini
  upstream.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import FormatError
from omniroute.formats.gemini_stream import (
    FINISH_FROM_CANONICAL,
    StreamDecoder,
    StreamEncoder,
    candidate_to_message,
    error_body,
    finish_to_canonical,
    get,
    parse_error,
    usage_from_canonical,
    usage_to_canonical,
)

FORMAT = "gemini"
STREAM_TERMINATOR = None
SKIP_SIGNATURE = "skip_thought_signature_validator"

__all__ = [
    "StreamDecoder", "StreamEncoder", "canonical_to_request", "canonical_to_response",
    "error_body", "parse_error", "request_to_canonical", "response_to_canonical",
]

Json = dict[str, Any]
_LEVEL_TO_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}

log = logging.getLogger("omniroute.formats.gemini")

# The fields request_to_canonical translates (camelCase; snake_case twins are read too); any
# other top-level field, and any other generationConfig key, is carried as a native field.
_TRANSLATED = frozenset({"model", "contents", "systemInstruction", "tools", "toolConfig",
                         "generationConfig"})
_TRANSLATED_CONFIG = frozenset({"temperature", "topP", "topK", "seed", "maxOutputTokens",
                                "candidateCount", "presencePenalty", "frequencyPenalty",
                                "stopSequences", "responseMimeType", "responseJsonSchema",
                                "responseSchema", "thinkingConfig"})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.title() for word in rest)


# --- request: Gemini → canonical -------------------------------------------------------------

def request_to_canonical(body: Any, *, model: str | None = None,
                         stream: bool | None = None) -> Json:
    if not isinstance(body, dict):
        raise FormatError("Invalid JSON payload: the request body must be an object.")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("model is required (it is part of the URL path)", param="model")
    contents = get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise FormatError("contents is not specified", param="contents")
    canonical: Json = {"model": model.removeprefix("models/"),
                       "messages": _system_to_canonical(get(body, "systemInstruction"))}
    canonical["messages"].extend(_contents_to_canonical(contents))
    if all(message["role"] == "system" for message in canonical["messages"]):
        raise FormatError("contents: no part a model can read (text, media or function parts)",
                          param="contents")
    if stream is not None:
        canonical["stream"] = stream
    _tools_to_canonical(body, canonical)
    config = get(body, "generationConfig") or {}
    _config_to_canonical(config, canonical)
    native = {_camel(k): v for k, v in body.items() if _camel(k) not in _TRANSLATED}
    extra_config = {_camel(k): v for k, v in config.items() if _camel(k) not in _TRANSLATED_CONFIG} \
        if isinstance(config, dict) else {}
    if extra_config:
        native["generationConfig"] = extra_config
    c.set_native_fields(canonical, FORMAT, native)
    return canonical


def _system_to_canonical(system: Any) -> list[Json]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, dict):
        return []
    text = "".join(str(part.get("text", "")) for part in get(system, "parts") or []
                   if isinstance(part, dict))
    return [{"role": "system", "content": text}] if text else []


def _contents_to_canonical(contents: list[Any]) -> list[Json]:
    messages: list[Json] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not yet answered
    for turn_index, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(get(content, "parts"), list):
            raise FormatError(f"contents[{turn_index}].parts must be an array",
                              param=f"contents[{turn_index}]")
        if content.get("role") == "model":
            message = _model_turn(content["parts"], turn_index)
            pending = [(t["id"], t["function"]["name"]) for t in message.get("tool_calls", [])]
            messages.append(message)
        else:
            messages.extend(_user_turn(content["parts"], pending, turn_index))
    return messages


def _model_turn(parts: list[Any], turn_index: int) -> Json:
    candidate = {"content": {"parts": parts}}
    message, _ = candidate_to_message(candidate, id_seed=f"turn{turn_index}")
    return message


def _user_turn(parts: list[Any], pending: list[tuple[str, str]], turn_index: int) -> list[Json]:
    tool_messages: list[Json] = []
    content: list[Json] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        response = get(part, "functionResponse")
        if isinstance(response, dict):
            tool_messages.append(_function_response(response, pending))
        elif "text" in part:
            content.append({"type": "text", "text": str(part["text"])})
        elif get(part, "inlineData") or get(part, "fileData"):
            content.append(_media_part(part))
        else:  # executableCode, codeExecutionResult, a bare thoughtSignature …
            log.debug("contents[%d]: a part with %s is carried only to Gemini", turn_index, sorted(part))
    if content:
        tool_messages.append({"role": "user", "content": content})
    return tool_messages


def _function_response(response: Json, pending: list[tuple[str, str]]) -> Json:
    name = str(response.get("name", ""))
    call_id = response.get("id")
    if not call_id:
        match = next((p for p in pending if p[1] == name), None)
        call_id = match[0] if match else c.stable_call_id("response", name)
    pending[:] = [p for p in pending if p[0] != call_id]
    value = response.get("response")
    # {"output": x} is Gemini's documented convention for a plain result.
    if isinstance(value, dict) and set(value) == {"output"}:
        value = value["output"]
    text = value if isinstance(value, str) else c.dumps(value)
    return {"role": "tool", "tool_call_id": str(call_id), "content": text}


def _media_part(part: Json) -> Json:
    inline = get(part, "inlineData")
    if isinstance(inline, dict):
        mime = str(get(inline, "mimeType") or "application/octet-stream")
        url = c.data_url(mime, str(inline.get("data", "")))
        if mime.startswith("image/"):
            return c.image_part(url)
        return {"type": "file", "file": {"file_data": url}}
    file_data = get(part, "fileData") or {}
    return c.image_part(str(get(file_data, "fileUri") or ""),
                        {"mime_type": get(file_data, "mimeType")} if get(file_data, "mimeType")
                        else None)


def _tools_to_canonical(body: Json, canonical: Json) -> None:
    tools: list[Json] = []
    for tool in get(body, "tools") or []:
        if isinstance(tool, dict) and set(map(_camel, tool)) - {"functionDeclarations"}:
            log.debug("tools: %s are carried only to Gemini", sorted(set(map(_camel, tool)) - {"functionDeclarations"}))
        for declaration in get(tool, "functionDeclarations") or [] if isinstance(tool, dict) else []:
            function: Json = {"name": str(declaration.get("name", "")),
                              "parameters": get(declaration, "parametersJsonSchema")
                              or declaration.get("parameters") or {"type": "object"}}
            if declaration.get("description"):
                function["description"] = declaration["description"]
            tools.append({"type": "function", "function": function})
    if tools:
        canonical["tools"] = tools
    config = get(get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = str(config.get("mode", "")).upper()
    names = get(config, "allowedFunctionNames") or []
    if mode == "ANY" and len(names) == 1:
        canonical["tool_choice"] = c.tool_choice_canonical("function", names[0])
    elif mode in ("ANY", "VALIDATED"):
        canonical["tool_choice"] = "required" if mode == "ANY" else "auto"
    elif mode in ("AUTO", "NONE"):
        canonical["tool_choice"] = mode.lower()


_CONFIG_TO_CANONICAL = {"temperature": "temperature", "topP": "top_p", "seed": "seed",
                        "maxOutputTokens": "max_tokens", "candidateCount": "n",
                        "presencePenalty": "presence_penalty",
                        "frequencyPenalty": "frequency_penalty"}


def _config_to_canonical(config: Json, canonical: Json) -> None:
    for key, name in _CONFIG_TO_CANONICAL.items():
        if get(config, key) is not None:
            canonical[name] = get(config, key)
    if get(config, "stopSequences"):
        canonical["stop"] = list(get(config, "stopSequences"))
    c.set_ext(canonical, "top_k", get(config, "topK"))
    if get(config, "responseMimeType") == "application/json":
        schema = get(config, "responseJsonSchema") or get(config, "responseSchema")
        canonical["response_format"] = c.json_schema_format(schema if isinstance(schema, dict)
                                                            else None)
    thinking = get(config, "thinkingConfig") or {}
    budget = get(thinking, "thinkingBudget")
    level = get(thinking, "thinkingLevel")
    if isinstance(budget, int):
        canonical["reasoning_effort"] = c.budget_to_effort(budget)
        if budget >= 0:
            c.set_ext(canonical, "thinking_budget", budget)
    elif isinstance(level, str) and level.lower() in _LEVEL_TO_EFFORT:
        canonical["reasoning_effort"] = _LEVEL_TO_EFFORT[level.lower()]
    if get(thinking, "includeThoughts") is not None:
        c.set_ext(canonical, "include_thoughts", bool(get(thinking, "includeThoughts")))


# --- request: canonical → Gemini -------------------------------------------------------------

def canonical_to_request(canonical: Json, model: str) -> Json:
    """The body for `models/{model}:generateContent` (the model goes in the URL)."""
    system, rest = c.split_system(canonical.get("messages") or [])
    body: Json = {"contents": _contents_from_canonical(rest)}
    system_text = "\n\n".join(str(p.get("text", "")) for p in system if p.get("text"))
    if system_text:
        body["systemInstruction"] = {"parts": [{"text": system_text}]}
    _tools_from_canonical(canonical, body)
    config = _config_from_canonical(canonical)
    for key, value in c.native_fields(canonical, FORMAT).items():
        if key == "generationConfig" and isinstance(value, dict):
            config = {**value, **config}
        else:
            body.setdefault(key, value)
    if config:
        body["generationConfig"] = config
    return body


def _contents_from_canonical(messages: list[Json]) -> list[Json]:
    names = c.tool_names_by_id(messages)
    contents: list[Json] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            turn = {"role": "model", "parts": _model_parts(message)}
        elif role == "tool":
            turn = {"role": "user", "parts": [_function_response_part(message, names)]}
        else:
            turn = {"role": "user", "parts": _user_parts(message.get("content"))}
        if not turn["parts"]:
            continue
        if contents and contents[-1]["role"] == turn["role"]:
            contents[-1]["parts"].extend(turn["parts"])
        else:
            contents.append(turn)
    return contents


def _user_parts(content: Any) -> list[Json]:
    parts: list[Json] = []
    for part in c.content_parts(content):
        kind = part.get("type")
        if kind in ("text", "input_text") and part.get("text"):
            parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            parts.append(_media_to_gemini(c.image_url_of(part), c.ext(part).get("mime_type")))
        elif kind == "file":
            parts.append(_media_to_gemini(str((part.get("file") or {}).get("file_data", "")), None))
    return parts


def _media_to_gemini(url: str, mime: str | None) -> Json:
    parsed = c.parse_data_url(url)
    if parsed:
        return {"inlineData": {"mimeType": parsed[0], "data": parsed[1]}}
    guessed = mime or mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": guessed, "fileUri": url}}


def _model_parts(message: Json) -> list[Json]:
    parts: list[Json] = []
    text = c.content_text(message.get("content"))
    if text:
        part: Json = {"text": text}
        if c.ext(message).get("thought_signature"):
            part["thoughtSignature"] = c.ext(message)["thought_signature"]
        parts.append(part)
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        part = {"functionCall": {"name": str(function.get("name", "")),
                                 "args": c.loads_object(function.get("arguments"))}}
        signature = c.ext(call).get("thought_signature")
        if signature or index == 0:
            part["thoughtSignature"] = signature or SKIP_SIGNATURE
        parts.append(part)
    return parts


def _function_response_part(message: Json, names: dict[str, str]) -> Json:
    call_id = str(message.get("tool_call_id", ""))
    content = message.get("content")
    text = content if isinstance(content, str) else c.content_text(content)
    value = c.loads_object(text) if text.strip().startswith("{") else {"output": text}
    return {"functionResponse": {"name": names.get(call_id, call_id), "response": value}}


def _tools_from_canonical(canonical: Json, body: Json) -> None:
    declarations = []
    for function in c.function_tools(canonical):
        declaration: Json = {"name": str(function.get("name", ""))}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
    choice = c.tool_choice_of(canonical)
    if choice is None or not declarations:
        return
    mode, name = choice
    config: Json = {"mode": {"auto": "AUTO", "none": "NONE"}.get(mode, "ANY")}
    if mode == "function":
        config["allowedFunctionNames"] = [name]
    body["toolConfig"] = {"functionCallingConfig": config}


_CONFIG_FROM_CANONICAL = {"temperature": "temperature", "top_p": "topP", "seed": "seed",
                          "n": "candidateCount", "presence_penalty": "presencePenalty",
                          "frequency_penalty": "frequencyPenalty"}


def _config_from_canonical(canonical: Json) -> Json:
    config: Json = {}
    for name, key in _CONFIG_FROM_CANONICAL.items():
        if canonical.get(name) is not None:
            config[key] = canonical[name]
    if c.max_output_tokens(canonical) is not None:
        config["maxOutputTokens"] = c.max_output_tokens(canonical)
    if c.stop_list(canonical):
        config["stopSequences"] = c.stop_list(canonical)
    if isinstance(c.ext(canonical).get("top_k"), int):
        config["topK"] = c.ext(canonical)["top_k"]
    kind, schema, _ = c.response_format_of(canonical)
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    budget = c.requested_budget(canonical)
    if budget is not None:
        include = c.ext(canonical).get("include_thoughts", budget != 0)
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": bool(include)}
    return config


# --- answers ---------------------------------------------------------------------------------

def response_to_canonical(body: Any) -> Json:
    if not isinstance(body, dict) or ("candidates" not in body and "promptFeedback" not in body
                                      and "prompt_feedback" not in body):
        raise FormatError("upstream answer is not a GenerateContentResponse", status=502)
    response_id = str(get(body, "responseId") or c.new_id("chatcmpl-"))
    choices = []
    for index, candidate in enumerate(get(body, "candidates") or []):
        message, has_calls = candidate_to_message(candidate, id_seed=f"{response_id}:{index}")
        reason = finish_to_canonical(get(candidate, "finishReason"), has_calls)
        choices.append({"index": candidate.get("index", index), "message": message,
                        "finish_reason": reason, "logprobs": None})
    if not choices:  # the prompt itself was blocked
        choices.append({"index": 0, "message": {"role": "assistant", "content": ""},
                        "finish_reason": "content_filter", "logprobs": None})
    return {"id": response_id, "object": "chat.completion", "created": c.now(),
            "model": str(get(body, "modelVersion") or ""), "choices": choices,
            "usage": usage_to_canonical(get(body, "usageMetadata")).to_openai()}


def canonical_to_response(canonical: Json) -> Json:
    candidates = []
    for choice in canonical.get("choices") or []:
        message = choice.get("message") or {}
        parts: list[Json] = []
        if message.get("reasoning_content"):
            parts.append({"text": message["reasoning_content"], "thought": True})
        parts.extend(_model_parts_with_ids(message))
        candidates.append({"content": {"role": "model", "parts": parts},
                           "finishReason": FINISH_FROM_CANONICAL.get(
                               str(choice.get("finish_reason")), "STOP"),
                           "index": choice.get("index", 0)})
    return {"candidates": candidates,
            "usageMetadata": usage_from_canonical(c.Usage.from_openai(canonical.get("usage"))),
            "modelVersion": str(canonical.get("model", "")),
            "responseId": str(canonical.get("id", ""))}


def _model_parts_with_ids(message: Json) -> list[Json]:
    """Model parts for a Gemini client: function calls keep their ids so that the client can
    answer with them, and no placeholder signatures."""
    parts = _model_parts(message)
    calls = message.get("tool_calls") or []
    call_parts = [p for p in parts if "functionCall" in p]
    for part, call in zip(call_parts, calls, strict=False):
        part["functionCall"]["id"] = str(call.get("id", ""))
        if part.get("thoughtSignature") == SKIP_SIGNATURE:
            del part["thoughtSignature"]
    return parts


def model_from_path(path_model: str) -> str:
    """`models/gemini-2.5-pro:streamGenerateContent` → `gemini-2.5-pro`."""
    return re.sub(r":\w+$", "", path_model).removeprefix("models/")
