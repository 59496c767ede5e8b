"""Ollama `/api/chat` ↔ canonical, streaming included (NDJSON: one ChatResponse per line).

Choices worth knowing:
- Ollama streams unless told otherwise: a missing `stream` means true, and requests to Ollama
  always say which they want.
- Ollama tool calls have no ids and tool results name the tool (`tool_name`): ids are
  synthesized deterministically and results matched to calls by name, in call order.
- Images are base64 only; image URLs cannot be fetched by a pure translator and are dropped
  when sending to Ollama.
- `think` is a bool (or "low" / "medium" / "high" for gpt-oss) ↔ reasoning_effort.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import FormatError, UpstreamStreamError, fallback_message, load_json
from omniroute.formats.openai_chat import error_type_for_status

FORMAT = "ollama"
STREAM_TERMINATOR = None

Json = dict[str, Any]
Event = tuple[str, Json]

_OPTIONS_TO_CANONICAL = {"temperature": "temperature", "top_p": "top_p", "seed": "seed",
                         "num_predict": "max_tokens", "presence_penalty": "presence_penalty",
                         "frequency_penalty": "frequency_penalty"}
_IMAGE_MAGIC = {"iVBOR": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif",
                "UklGR": "image/webp"}


# --- requests --------------------------------------------------------------------------------

def request_to_canonical(body: Any, *, model: str | None = None,
                         stream: bool | None = None) -> Json:
    if not isinstance(body, dict):
        raise FormatError("invalid request body: expected a JSON object")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise FormatError("model is required", param="model")
    if not isinstance(body.get("messages"), list):
        raise FormatError("messages must be an array", param="messages")
    canonical: Json = {"model": model, "messages": _messages_to_canonical(body["messages"])}
    canonical["stream"] = stream if stream is not None else body.get("stream", True) is not False
    if body.get("tools"):
        canonical["tools"] = [t for t in body["tools"] if isinstance(t, dict)]
    fmt = body.get("format")
    if fmt == "json":
        canonical["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        canonical["response_format"] = c.json_schema_format(fmt)
    _options_to_canonical(body.get("options") or {}, canonical)
    think = body.get("think")
    if isinstance(think, bool):
        canonical["reasoning_effort"] = "medium" if think else "none"
    elif isinstance(think, str) and think in ("low", "medium", "high"):
        canonical["reasoning_effort"] = think
    return canonical


def _messages_to_canonical(messages: list[Any]) -> list[Json]:
    out: list[Json] = []
    pending: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise FormatError(f"messages[{index}] must be an object with a role",
                              param=f"messages[{index}]")
        role = message["role"]
        if role == "assistant":
            converted = _assistant_to_canonical(message, index)
            pending = [(t["id"], t["function"]["name"]) for t in converted.get("tool_calls", [])]
        elif role == "tool":
            converted = _tool_to_canonical(message, pending)
        else:
            converted = {"role": role, "content": _user_content(message)}
        out.append(converted)
    return out


def _user_content(message: Json) -> Any:
    text = str(message.get("content") or "")
    images = [img for img in message.get("images") or [] if isinstance(img, str)]
    if not images:
        return text
    parts: list[Json] = [{"type": "text", "text": text}] if text else []
    parts.extend(c.image_part(c.data_url(_image_mime(img), img)) for img in images)
    return parts


def _image_mime(data: str) -> str:
    return next((mime for magic, mime in _IMAGE_MAGIC.items() if data.startswith(magic)),
                "image/png")


def _assistant_to_canonical(message: Json, index: int) -> Json:
    out: Json = {"role": "assistant", "content": str(message.get("content") or "")}
    if message.get("thinking"):
        out["reasoning_content"] = str(message["thinking"])
    calls = [_call_to_canonical(call, f"m{index}", i)
             for i, call in enumerate(message.get("tool_calls") or []) if isinstance(call, dict)]
    if calls:
        out["tool_calls"] = calls
        out["content"] = out["content"] or None
    return out


def _call_to_canonical(call: Json, seed: str, index: int) -> Json:
    function = call.get("function") or {}
    name = str(function.get("name", ""))
    arguments = function.get("arguments")
    return {"id": str(call.get("id") or c.stable_call_id(seed, index, name)), "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str)
                         else c.dumps(arguments or {})}}


def _tool_to_canonical(message: Json, pending: list[tuple[str, str]]) -> Json:
    name = str(message.get("tool_name") or message.get("name") or "")
    call_id = message.get("tool_call_id")
    if not call_id:
        match = next((p for p in pending if p[1] == name), pending[0] if pending else None)
        call_id = match[0] if match else c.stable_call_id("tool", name)
    pending[:] = [p for p in pending if p[0] != call_id]
    return {"role": "tool", "tool_call_id": str(call_id), "content": str(message.get("content") or "")}


def _options_to_canonical(options: Json, canonical: Json) -> None:
    for key, name in _OPTIONS_TO_CANONICAL.items():
        if options.get(key) is not None:
            canonical[name] = options[key]
    if options.get("stop"):
        canonical["stop"] = options["stop"]
    c.set_ext(canonical, "top_k", options.get("top_k"))


def canonical_to_request(canonical: Json, model: str) -> Json:
    messages = canonical.get("messages") or []
    names = c.tool_names_by_id(messages)
    body: Json = {"model": model, "messages": [_message_to_ollama(m, names) for m in messages],
                  "stream": bool(canonical.get("stream"))}
    tools = [{"type": "function", "function": c.strip_extensions(f)}
             for f in c.function_tools(canonical)]
    if tools and c.tool_choice_of(canonical) != ("none", None):
        body["tools"] = tools
    kind, schema, _ = c.response_format_of(canonical)
    if kind == "json_schema" and schema is not None:
        body["format"] = schema
    elif kind in ("json_object", "json_schema"):
        body["format"] = "json"
    options = _options_from_canonical(canonical)
    if options:
        body["options"] = options
    effort = canonical.get("reasoning_effort")
    if isinstance(effort, str):
        body["think"] = effort != "none"
    return body


def _message_to_ollama(message: Json, names: dict[str, str]) -> Json:
    role = str(message.get("role", "user"))
    out: Json = {"role": "system" if role == "developer" else role,
                 "content": c.content_text(message.get("content"))}
    images = [parsed[1] for part in c.content_parts(message.get("content"))
              if part.get("type") == "image_url"
              and (parsed := c.parse_data_url(c.image_url_of(part)))]
    if images:
        out["images"] = images
    if role == "assistant":
        if message.get("reasoning_content"):
            out["thinking"] = message["reasoning_content"]
        calls = [{"function": {"name": (t.get("function") or {}).get("name", ""),
                               "arguments": c.loads_object((t.get("function") or {}).get("arguments"))}}
                 for t in message.get("tool_calls") or []]
        if calls:
            out["tool_calls"] = calls
    if role == "tool":
        out["tool_name"] = names.get(str(message.get("tool_call_id", "")), "")
    return out


def _options_from_canonical(canonical: Json) -> Json:
    options: Json = {}
    for key, name in _OPTIONS_TO_CANONICAL.items():
        if name != "max_tokens" and canonical.get(name) is not None:
            options[key] = canonical[name]
    if c.max_output_tokens(canonical) is not None:
        options["num_predict"] = c.max_output_tokens(canonical)
    if c.stop_list(canonical):
        options["stop"] = c.stop_list(canonical)
    if isinstance(c.ext(canonical).get("top_k"), int):
        options["top_k"] = c.ext(canonical)["top_k"]
    return options


# --- answers ---------------------------------------------------------------------------------

def _finish(body: Json, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    return "length" if body.get("done_reason") == "length" else "stop"


def _usage(body: Json) -> c.Usage:
    return c.Usage(prompt=body.get("prompt_eval_count") or 0,
                   completion=body.get("eval_count") or 0)


def response_to_canonical(body: Any) -> Json:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise FormatError("upstream answer is not an Ollama chat response", status=502)
    created = str(body.get("created_at", ""))
    message = _assistant_to_canonical(body["message"], 0)
    for call in message.get("tool_calls") or []:  # ids unique per answer, stable per answer
        call["id"] = c.stable_call_id(created, call["id"])
    return c.response(id_=c.new_id("chatcmpl-"), model=str(body.get("model", "")),
                      created=c.now(), message=message,
                      finish_reason=_finish(body, bool(message.get("tool_calls"))),
                      usage=_usage(body))


def _timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _final(model: str, finish: str | None, usage: c.Usage, message: Json) -> Json:
    return {"model": model, "created_at": _timestamp(), "message": message, "done": True,
            "done_reason": "length" if finish == "length" else "stop",
            "total_duration": 0, "load_duration": 0,
            "prompt_eval_count": usage.prompt, "prompt_eval_duration": 0,
            "eval_count": usage.completion, "eval_duration": 0}


def canonical_to_response(canonical: Json) -> Json:
    choice = (canonical.get("choices") or [{}])[0]
    message = _message_to_ollama(choice.get("message") or {"role": "assistant"}, {})
    message["role"] = "assistant"
    return _final(str(canonical.get("model", "")), choice.get("finish_reason"),
                  c.Usage.from_openai(canonical.get("usage")), message)


# --- streams ---------------------------------------------------------------------------------

class StreamDecoder:
    """Ollama NDJSON lines (each passed as `data`) → canonical chunks."""

    def __init__(self) -> None:
        self._build = c.ChunkBuilder()
        self._calls = 0
        self._usage: c.Usage | None = None

    def feed(self, event: str, data: Json) -> list[Json]:
        if "error" in data:
            raise UpstreamStreamError(str(data["error"]), type_="api_error")
        self._build.model = str(data.get("model") or self._build.model)
        message = data.get("message") or {}
        chunks: list[Json] = []
        if message.get("thinking"):
            chunks.append(self._build.reasoning(str(message["thinking"])))
        if message.get("content"):
            chunks.append(self._build.text(str(message["content"])))
        for call in message.get("tool_calls") or []:
            converted = _call_to_canonical(call, self._build.id, self._calls)
            chunks.append(self._build.tool_call(self._calls, id_=converted["id"],
                                                name=converted["function"]["name"],
                                                arguments=converted["function"]["arguments"]))
            self._calls += 1
        if data.get("done"):
            chunks.append(self._build.finish(_finish(data, self._calls > 0)))
            self._usage = _usage(data)
        return chunks

    def finish(self) -> list[Json]:
        if self._usage is None:
            return []
        usage, self._usage = self._usage, None
        return [self._build.usage(usage)]


class StreamEncoder:
    """Canonical chunks → Ollama NDJSON objects; tool calls go out whole (Ollama has no
    argument deltas) in one message just before the final `done: true` line."""

    def __init__(self, *, model: str, request_id: str, include_usage: bool = True) -> None:
        self.model = model
        self._calls: dict[int, Json] = {}
        self._finish: str | None = None
        self._done = False

    def _line(self, message: Json) -> Event:
        return ("", {"model": self.model, "created_at": _timestamp(),
                     "message": {"role": "assistant", **message}, "done": False})

    def encode(self, chunk: Json) -> list[Event]:
        if self._done:
            return []
        events: list[Event] = []
        for piece in c.read_chunk(chunk):
            if piece.kind == "reasoning":
                events.append(self._line({"content": "", "thinking": piece.text}))
            elif piece.kind == "text":
                events.append(self._line({"content": piece.text}))
            elif piece.kind == "tool_start":
                self._calls[piece.index] = {"name": piece.name, "arguments": ""}
            elif piece.kind == "tool_args" and piece.index in self._calls:
                self._calls[piece.index]["arguments"] += piece.text
            elif piece.kind == "finish":
                self._finish = piece.text
            elif piece.kind == "usage":
                events.extend(self._end(piece.usage))
        return events

    def _end(self, usage: c.Usage | None) -> list[Event]:
        if self._done:
            return []
        self._done = True
        events: list[Event] = []
        if self._calls:
            calls = [{"function": {"name": call["name"],
                                   "arguments": c.loads_object(call["arguments"])}}
                     for _, call in sorted(self._calls.items())]
            events.append(self._line({"content": "", "tool_calls": calls}))
        events.append(("", _final(self.model, self._finish, usage or c.Usage(),
                                  {"role": "assistant", "content": ""})))
        return events

    def finish(self) -> list[Event]:
        return self._end(None)

    def error(self, status: int, message: str, type_: str) -> list[Event]:
        self._done = True
        return [("", error_body(status, message))]


# --- errors ----------------------------------------------------------------------------------

def error_body(status: int, message: str, *, type_: str | None = None, code: str | None = None,
               param: str | None = None) -> Json:
    """Ollama's error object is just {"error": "<message>"}."""
    return {"error": message}


def parse_error(status: int, body: bytes | str) -> tuple[str, str]:
    data = load_json(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        return error_type_for_status(status), data["error"]
    return error_type_for_status(status), fallback_message(status, body)
