"""The canonical (hub) format and the extensions it needs to carry every other format.

The hub is OpenAI chat completions JSON: a request, a `chat.completion` response and
`chat.completion.chunk` stream chunks, the stream ending with a usage-only chunk
(`choices: []` plus `usage`). Every format module translates to and from this shape only, so
N formats need 2N translators instead of N².

Extensions (what OpenAI chat has no field for). The rule is simple: a field OpenAI-compatible
servers already use keeps its de-facto name; everything else lives in one namespaced dict,
`x_omniroute`, at the level it belongs to. `strip_extensions` removes every `x_omniroute`
before a canonical body is sent to an OpenAI-compatible upstream, which rejects unknown keys.

De-facto fields (kept as-is, also sent to OpenAI-compatible upstreams):
- `reasoning_effort` on the request: "none" | "minimal" | "low" | "medium" | "high".
- `reasoning_content` (str) on an assistant message and on a stream delta: the model's
  visible reasoning (Anthropic thinking text, Gemini thought parts, Responses reasoning
  summaries, Ollama `thinking`), as DeepSeek / vLLM / OpenRouter name it.
- usage: `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`
  and `prompt_tokens_details.cache_creation_tokens` (Anthropic cache writes). Counts follow
  OpenAI's meaning: `prompt_tokens` includes cached and cache-creation tokens,
  `completion_tokens` includes reasoning tokens.

`x_omniroute` keys, by level:
- request: `top_k` (int), `thinking_budget` (int, the exact token budget when the source gave
  one; `reasoning_effort` is set too, as the portable approximation), `include_thoughts`
  (bool), `cache_control` (Anthropic top-level automatic caching), `thinking_mode` (str,
  Anthropic's `thinking.type` when it has no budget: adaptive | disabled | between_tools; only
  an Anthropic upstream reads it, others read `reasoning_effort`), `anthropic_effort` (str,
  Anthropic's output_config.effort as sent: low | medium | high | xhigh | max), `native_fields`
  ({"format": <format name>, "fields": {name: value}}: the caller's top-level fields that its
  format module does not translate, e.g. Anthropic's context_management or Responses'
  prompt_cache_key; an upstream of the same format gets them back (`native_fields()`), every
  other drops them and the executor says so in a debug log).
- message (system): `mid_conversation` (bool, an Anthropic `{"role": "system"}` message from
  inside `messages`: an Anthropic upstream gets it back at its position, every other system
  message joins Anthropic's top-level system), `cache_control`.
- message (assistant): `reasoning_signature` (str, the Anthropic thinking block signature),
  `redacted_reasoning` (list[str], Anthropic `redacted_thinking` data), `thought_signature`
  (str, Gemini's signature on a text part). Signatures are per provider on purpose: each
  provider rejects the other's.
- message (tool): `is_error` (bool, Anthropic tool_result is_error), `cache_control`.
- content part: `cache_control` (Anthropic, on text/image parts and on tool results' parts),
  `mime_type` (on an image_url part whose URL is a Gemini fileData URI).
- tool definition: `cache_control`.
- tool call: `thought_signature` (Gemini's opaque signature on a functionCall part).
- stream delta: `reasoning_signature` (str) and `redacted_reasoning` (list[str]), as on the
  message.

Only choice 0 of a stream is carried by the non-OpenAI encoders (they have one candidate).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

EXT = "x_omniroute"

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")

# reasoning_effort ↔ thinking budget (tokens). Anthropic's minimum budget is 1024.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}

# Anthropic's forced-tool route to structured output (it has no response_format): the tool's
# input *is* the JSON answer, and decoders turn that tool call back into text content.
JSON_TOOL_NAME = "omniroute_json_output"

Json = dict[str, Any]


# --- x_omniroute helpers -----------------------------------------------------------------

def ext(obj: Any) -> Json:
    """The `x_omniroute` dict of a canonical object ({} when absent or malformed)."""
    if isinstance(obj, dict):
        value = obj.get(EXT)
        if isinstance(value, dict):
            return value
    return {}


def set_ext(obj: Json, key: str, value: Any) -> None:
    """Set one `x_omniroute` key, skipping None so bodies stay minimal."""
    if value is None:
        return
    obj.setdefault(EXT, {})[key] = value


def set_native_fields(canonical: Json, fmt: str, fields: Json) -> None:
    """Keep the caller's untranslated top-level fields for an upstream of its own format."""
    if fields:
        set_ext(canonical, "native_fields", {"format": fmt, "fields": fields})


def native_fields(canonical: Json, fmt: str) -> Json:
    """The untranslated top-level fields the caller sent in `fmt` ({} when it spoke another
    format or sent none)."""
    carried = ext(canonical).get("native_fields")
    if not isinstance(carried, dict) or carried.get("format") != fmt:
        return {}
    fields = carried.get("fields")
    return dict(fields) if isinstance(fields, dict) else {}


def strip_extensions(value: Any) -> Any:
    """A deep copy of `value` without any `x_omniroute` key (for OpenAI-compatible upstreams)."""
    if isinstance(value, dict):
        return {k: strip_extensions(v) for k, v in value.items() if k != EXT}
    if isinstance(value, list):
        return [strip_extensions(v) for v in value]
    return value


# --- content -------------------------------------------------------------------------------

def content_parts(content: Any) -> list[Json]:
    """Message content as a list of OpenAI content parts (a string becomes one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [part for part in content if isinstance(part, dict)]
    return []


def content_text(content: Any) -> str:
    """The text of message content, text parts joined without separator."""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content_parts(content)
                   if part.get("type") in ("text", "input_text", "output_text"))


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:<mime>;base64,<data>` → (mime, base64 data); None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return header[: -len(";base64")] or "application/octet-stream", data


def data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def image_part(url: str, part_ext: Json | None = None) -> Json:
    part: Json = {"type": "image_url", "image_url": {"url": url}}
    if part_ext:
        part[EXT] = dict(part_ext)
    return part


def image_url_of(part: Json) -> str:
    image = part.get("image_url")
    if isinstance(image, dict):
        return str(image.get("url", ""))
    return str(image or "")


# --- JSON ----------------------------------------------------------------------------------

def dumps(value: Any) -> str:
    """Compact JSON as the APIs emit it (arguments strings, tool results)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads_object(text: Any) -> Json:
    """Tool-call arguments → dict. Providers that want an object get {} for empty input and
    the raw text under "arguments" when it is not a JSON object, so nothing is lost."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": value}


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def stable_call_id(*parts: Any) -> str:
    """A deterministic tool-call id for formats without ids (Gemini, Ollama), so the same
    upstream answer always yields the same id."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"call_{digest[:24]}"


def now() -> int:
    return int(time.time())


# --- reasoning -----------------------------------------------------------------------------

def effort_to_budget(effort: str | None) -> int | None:
    """reasoning_effort → token budget; 0 for "none", None when no effort was asked."""
    if effort is None:
        return None
    if effort == "none":
        return 0
    return EFFORT_BUDGETS.get(effort, EFFORT_BUDGETS["medium"])


def budget_to_effort(budget: int | None) -> str | None:
    if budget is None or budget < 0:  # -1 is Gemini's "dynamic"
        return None if budget is None else "medium"
    if budget == 0:
        return "none"
    if budget <= EFFORT_BUDGETS["low"]:
        return "low"
    if budget <= EFFORT_BUDGETS["medium"]:
        return "medium"
    return "high"


def requested_budget(canonical: Json) -> int | None:
    """The thinking budget a canonical request asks for: the exact one if it came with one,
    otherwise derived from reasoning_effort. None: no reasoning requested."""
    exact = ext(canonical).get("thinking_budget")
    if isinstance(exact, int):
        return exact
    effort = canonical.get("reasoning_effort")
    return effort_to_budget(effort) if isinstance(effort, str) else None


# --- usage ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Usage:
    """Token counts with OpenAI's meaning (prompt includes cached, completion includes
    reasoning)."""
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0
    cache_creation: int = 0

    def to_openai(self) -> Json:
        usage: Json = {"prompt_tokens": self.prompt, "completion_tokens": self.completion,
                       "total_tokens": self.prompt + self.completion}
        prompt_details: Json = {"cached_tokens": self.cached}
        if self.cache_creation:
            prompt_details["cache_creation_tokens"] = self.cache_creation
        usage["prompt_tokens_details"] = prompt_details
        usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning}
        return usage

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(prompt=_int(usage.get("prompt_tokens")),
                   completion=_int(usage.get("completion_tokens")),
                   cached=_int(prompt_details.get("cached_tokens")),
                   reasoning=_int(completion_details.get("reasoning_tokens")),
                   cache_creation=_int(prompt_details.get("cache_creation_tokens")))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- responses and chunks ------------------------------------------------------------------

def response(*, id_: str, model: str, created: int, message: Json, finish_reason: str | None,
             usage: Usage | None) -> Json:
    body: Json = {"id": id_, "object": "chat.completion", "created": created, "model": model,
                  "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                               "logprobs": None}]}
    if usage is not None:
        body["usage"] = usage.to_openai()
    return body


class ChunkBuilder:
    """Builds canonical stream chunks for one response (used by every StreamDecoder)."""

    def __init__(self, *, id_: str = "", model: str = "", created: int | None = None) -> None:
        self.id = id_ or new_id("chatcmpl-")
        self.model = model
        self.created = created if created is not None else now()
        self._role_sent = False

    def delta(self, delta: Json, finish_reason: str | None = None) -> Json:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                             "logprobs": None}]}

    def text(self, text: str) -> Json:
        return self.delta({"content": text})

    def reasoning(self, text: str) -> Json:
        return self.delta({"reasoning_content": text})

    def reasoning_ext(self, key: str, value: Any) -> Json:
        return self.delta({EXT: {key: value}})

    def tool_call(self, index: int, *, id_: str | None = None, name: str | None = None,
                  arguments: str = "", call_ext: Json | None = None) -> Json:
        call: Json = {"index": index}
        if id_ is not None:
            call["id"] = id_
            call["type"] = "function"
        function: Json = {"arguments": arguments}
        if name is not None:
            function = {"name": name, "arguments": arguments}
        call["function"] = function
        if call_ext:
            call[EXT] = call_ext
        return self.delta({"tool_calls": [call]})

    def finish(self, reason: str) -> Json:
        return self.delta({}, finish_reason=reason)

    def usage(self, usage: Usage) -> Json:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage.to_openai()}


class StreamAccumulator:
    """Folds canonical chunks into a canonical `chat.completion` (choice 0), e.g. to answer a
    non-streaming client from a streaming upstream."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.signature: str | None = None
        self.redacted: list[str] = []
        self.tool_calls: dict[int, Json] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def add(self, chunk: Json) -> None:
        self.id = self.id or str(chunk.get("id", ""))
        self.model = self.model or str(chunk.get("model", ""))
        self.created = self.created or _int(chunk.get("created"))
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                self._add_delta(choice.get("delta") or {})
                self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def _add_delta(self, delta: Json) -> None:
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        if isinstance(delta.get("reasoning_content"), str):
            self.reasoning.append(delta["reasoning_content"])
        delta_ext = ext(delta)
        if isinstance(delta_ext.get("reasoning_signature"), str):
            self.signature = delta_ext["reasoning_signature"]
        self.redacted.extend(delta_ext.get("redacted_reasoning") or [])
        for call in delta.get("tool_calls") or []:
            self._add_call(call)

    def _add_call(self, call: Json) -> None:
        slot = self.tool_calls.setdefault(
            _int(call.get("index")),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if call.get("id"):
            slot["id"] = call["id"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["function"]["name"] = function["name"]
        slot["function"]["arguments"] += function.get("arguments") or ""
        if ext(call):
            slot.setdefault(EXT, {}).update(ext(call))

    def result(self) -> Json:
        message: Json = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        set_ext(message, "reasoning_signature", self.signature)
        if self.redacted:
            set_ext(message, "redacted_reasoning", list(self.redacted))
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return response(id_=self.id or new_id("chatcmpl-"), model=self.model,
                        created=self.created or now(), message=message,
                        finish_reason=self.finish_reason or "stop", usage=self.usage)


def response_to_chunks(body: Json) -> list[Json]:
    """A canonical `chat.completion` as the chunk sequence a stream would have carried
    (choice 0), e.g. to serve a cached answer to a streaming client."""
    build = ChunkBuilder(id_=str(body.get("id", "")), model=str(body.get("model", "")),
                         created=_int(body.get("created")) or None)
    choices = body.get("choices") or [{}]
    message = choices[0].get("message") or {}
    chunks: list[Json] = []
    if message.get("reasoning_content"):
        chunks.append(build.reasoning(message["reasoning_content"]))
    message_ext = ext(message)
    if message_ext.get("reasoning_signature"):
        chunks.append(build.reasoning_ext("reasoning_signature", message_ext["reasoning_signature"]))
    if message_ext.get("redacted_reasoning"):
        chunks.append(build.reasoning_ext("redacted_reasoning", message_ext["redacted_reasoning"]))
    text = content_text(message.get("content"))
    if text:
        chunks.append(build.text(text))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        chunks.append(build.tool_call(index, id_=call.get("id") or stable_call_id(index),
                                      name=function.get("name", ""),
                                      arguments=function.get("arguments") or "",
                                      call_ext=ext(call) or None))
    chunks.append(build.finish(choices[0].get("finish_reason") or "stop"))
    if body.get("usage"):
        chunks.append(build.usage(Usage.from_openai(body["usage"])))
    return chunks


def deep_copy(value: Json) -> Json:
    return copy.deepcopy(value)


# --- reading chunks (for StreamEncoders) ---------------------------------------------------

@dataclass(slots=True)
class Piece:
    """One thing a canonical chunk says, in the order it says it. `kind` is one of:
    reasoning, signature, redacted, text, tool_start, tool_args, finish, usage."""
    kind: str
    text: str = ""
    index: int = 0
    id: str = ""
    name: str = ""
    call_ext: Json | None = None
    usage: Usage | None = None


def read_chunk(chunk: Json) -> list[Piece]:
    """Split a canonical chunk (choice 0) into Pieces an encoder can act on one by one."""
    pieces: list[Piece] = []
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        pieces.extend(_read_delta(choice.get("delta") or {}))
        if choice.get("finish_reason"):
            pieces.append(Piece("finish", text=str(choice["finish_reason"])))
    if isinstance(chunk.get("usage"), dict):
        pieces.append(Piece("usage", usage=Usage.from_openai(chunk["usage"])))
    return pieces


def _read_delta(delta: Json) -> list[Piece]:
    pieces: list[Piece] = []
    if delta.get("reasoning_content"):
        pieces.append(Piece("reasoning", text=str(delta["reasoning_content"])))
    delta_ext = ext(delta)
    if delta_ext.get("reasoning_signature"):
        pieces.append(Piece("signature", text=str(delta_ext["reasoning_signature"])))
    for data in delta_ext.get("redacted_reasoning") or []:
        pieces.append(Piece("redacted", text=str(data)))
    if delta.get("content"):
        pieces.append(Piece("text", text=str(delta["content"])))
    if delta.get("refusal"):
        pieces.append(Piece("text", text=str(delta["refusal"])))
    for call in delta.get("tool_calls") or []:
        function = call.get("function") or {}
        index = _int(call.get("index"))
        if call.get("id") or function.get("name"):
            pieces.append(Piece("tool_start", index=index, id=str(call.get("id") or ""),
                                name=str(function.get("name") or ""), call_ext=ext(call) or None))
        if function.get("arguments"):
            pieces.append(Piece("tool_args", index=index, text=str(function["arguments"])))
    return pieces


# --- reading requests (for canonical_to_request) -------------------------------------------

def split_system(messages: list[Json]) -> tuple[list[Json], list[Json]]:
    """(system parts, other messages): system and developer messages anywhere in the history
    become one system prompt, because Anthropic and Gemini have a single one."""
    system: list[Json] = []
    rest: list[Json] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system.extend(content_parts(message.get("content")))
        else:
            rest.append(message)
    return system, rest


def max_output_tokens(canonical: Json) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = canonical.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def stop_list(canonical: Json) -> list[str] | None:
    stop = canonical.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str)] or None
    return None


def tool_names_by_id(messages: list[Json]) -> dict[str, str]:
    """Tool-call id → function name over the history (Gemini and Ollama answer tool results
    by name, OpenAI by id)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id"):
                names[str(call["id"])] = str((call.get("function") or {}).get("name", ""))
    return names


def function_tools(canonical: Json) -> list[Json]:
    """The `function` objects of a canonical request's function tools."""
    tools = canonical.get("tools") or []
    return [dict(tool["function"], **({EXT: ext(tool)} if ext(tool) else {}))
            for tool in tools
            if isinstance(tool, dict) and tool.get("type", "function") == "function"
            and isinstance(tool.get("function"), dict)]


def tool_choice_of(canonical: Json) -> tuple[str, str | None] | None:
    """tool_choice as (mode, function name): mode is auto | none | required | function."""
    choice = canonical.get("tool_choice")
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice, None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(name, str):
            return "function", name
    return None


def tool_choice_canonical(mode: str, name: str | None = None) -> Any:
    if mode == "function" and name:
        return {"type": "function", "function": {"name": name}}
    return mode


def response_format_of(canonical: Json) -> tuple[str, Json | None, str]:
    """(kind, JSON schema, schema name): kind is text | json_object | json_schema."""
    fmt = canonical.get("response_format")
    if not isinstance(fmt, dict):
        return "text", None, ""
    kind = str(fmt.get("type", "text"))
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema")
        return kind, schema if isinstance(schema, dict) else None, str(spec.get("name", "response"))
    return kind, None, ""


def json_schema_format(schema: Json | None, name: str = "response") -> Json:
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": name or "response", "schema": schema}}
