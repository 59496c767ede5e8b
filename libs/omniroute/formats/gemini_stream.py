"""Gemini streams ↔ canonical chunks, and what answers and streams share: candidates, finish
reasons, usage metadata and error objects.

A Gemini stream (`:streamGenerateContent?alt=sse`) is a sequence of whole
GenerateContentResponse objects, one per SSE `data:` frame, without event names. Function
calls arrive whole (never as argument fragments); the last object carries `finishReason` and
the final `usageMetadata`. An error mid-stream is a frame `{"error": {code, message, status}}`.
"""

from __future__ import annotations

import re
from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import UpstreamStreamError, fallback_message, load_json

Json = dict[str, Any]
Event = tuple[str, Json]

_CONTENT_FILTER = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                   "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
                   "MODEL_ARMOR"}
FINISH_FROM_CANONICAL = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
                         "content_filter": "SAFETY"}


def get(obj: Any, key: str) -> Any:
    """`obj[key]` under its camelCase name or its snake_case twin (the SDK may send either)."""
    if not isinstance(obj, dict):
        return None
    if key in obj:
        return obj[key]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower())


def finish_to_canonical(reason: Any, has_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"  # Gemini says STOP after function calls


def candidate_to_message(candidate: Json, *, id_seed: str,
                         first_call_index: int = 0) -> tuple[Json, bool]:
    """(assistant message, has function calls) from a candidate (or a `model` content turn).
    Calls without an id get a deterministic one from `id_seed` and their position."""
    parts = get(get(candidate, "content") or {}, "parts") or []
    message: Json = {"role": "assistant"}
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[Json] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = get(part, "thoughtSignature")
        call = get(part, "functionCall")
        if isinstance(call, dict):
            calls.append(_call_to_canonical(call, signature, id_seed,
                                            first_call_index + len(calls)))
            continue
        if get(part, "thought") and "text" in part:
            thoughts.append(str(part["text"]))
        elif "text" in part:
            texts.append(str(part["text"]))
        if signature and not c.ext(message).get("thought_signature"):
            c.set_ext(message, "thought_signature", signature)
    message["content"] = "".join(texts) if texts or not calls else None
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message, bool(calls)


def _call_to_canonical(call: Json, signature: Any, id_seed: str, index: int) -> Json:
    name = str(call.get("name", ""))
    out: Json = {"id": str(call.get("id") or c.stable_call_id(id_seed, index, name)),
                 "type": "function",
                 "function": {"name": name, "arguments": c.dumps(call.get("args") or {})}}
    c.set_ext(out, "thought_signature", signature or None)
    return out


def usage_to_canonical(meta: Any) -> c.Usage:
    """Gemini's candidatesTokenCount excludes thoughts; OpenAI's completion includes them."""
    if not isinstance(meta, dict):
        return c.Usage()
    thoughts = get(meta, "thoughtsTokenCount") or 0
    return c.Usage(prompt=get(meta, "promptTokenCount") or 0,
                   completion=(get(meta, "candidatesTokenCount") or 0) + thoughts,
                   cached=get(meta, "cachedContentTokenCount") or 0, reasoning=thoughts)


def usage_from_canonical(usage: c.Usage) -> Json:
    meta: Json = {"promptTokenCount": usage.prompt,
                  "candidatesTokenCount": max(usage.completion - usage.reasoning, 0),
                  "totalTokenCount": usage.prompt + usage.completion}
    if usage.cached:
        meta["cachedContentTokenCount"] = usage.cached
    if usage.reasoning:
        meta["thoughtsTokenCount"] = usage.reasoning
    return meta


# --- errors ----------------------------------------------------------------------------------

_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_HTTP_BY_NAME = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401,
                 "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
                 "INTERNAL": 500, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


def status_name(status: int) -> str:
    if status in _STATUS_NAMES:
        return _STATUS_NAMES[status]
    return "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


def error_body(status: int, message: str, *, type_: str | None = None, code: str | None = None,
               param: str | None = None) -> Json:
    """{"error": {"code", "message", "status"}}; `status` is always the google status name
    for the HTTP status (other formats' type names mean nothing to a Gemini client)."""
    return {"error": {"code": status, "message": message, "status": status_name(status)}}


def parse_error(status: int, body: bytes | str) -> tuple[str, str]:
    data = load_json(body)
    if isinstance(data, list) and data:  # the REST API sometimes wraps it in an array
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        if error.get("message"):
            return str(error.get("status") or status_name(status)), str(error["message"])
    return status_name(status), fallback_message(status, body)


# --- streams ---------------------------------------------------------------------------------

class StreamDecoder:
    """Gemini upstream frames → canonical chunks."""

    def __init__(self) -> None:
        self._build = c.ChunkBuilder()
        self._usage: Any = None
        self._calls = 0
        self._frames = 0
        self._finished = False

    def feed(self, event: str, data: Json) -> list[Json]:
        if isinstance(data.get("error"), dict):
            error = data["error"]
            code = error.get("code")
            raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                      status=code if isinstance(code, int) else 500,
                                      type_=str(error.get("status") or "INTERNAL"))
        self._build.id = str(get(data, "responseId") or self._build.id)
        self._build.model = str(get(data, "modelVersion") or self._build.model)
        if get(data, "usageMetadata"):
            self._usage = get(data, "usageMetadata")
        self._frames += 1
        candidates = get(data, "candidates") or []
        if not candidates and get(data, "promptFeedback"):
            return [self._build.finish("content_filter")]
        return self._candidate(candidates[0]) if candidates else []

    def _candidate(self, candidate: Json) -> list[Json]:
        message, _ = candidate_to_message(
            candidate, id_seed=f"{self._build.id}:{self._frames}", first_call_index=self._calls)
        chunks: list[Json] = []
        if message.get("reasoning_content"):
            chunks.append(self._build.reasoning(message["reasoning_content"]))
        if message.get("content"):
            chunks.append(self._build.text(message["content"]))
        for call in message.get("tool_calls") or []:
            chunks.append(self._build.tool_call(
                self._calls, id_=call["id"], name=call["function"]["name"],
                arguments=call["function"]["arguments"], call_ext=c.ext(call) or None))
            self._calls += 1
        reason = finish_to_canonical(get(candidate, "finishReason"), self._calls > 0)
        if reason and not self._finished:
            self._finished = True
            chunks.append(self._build.finish(reason))
        return chunks

    def finish(self) -> list[Json]:
        if self._usage is None:
            return []
        usage, self._usage = self._usage, None
        return [self._build.usage(usage_to_canonical(usage))]


class StreamEncoder:
    """Canonical chunks → GenerateContentResponse frames. Text and thoughts are sent as they
    come; function calls are sent whole (Gemini has no argument deltas) in the final frame,
    together with finishReason and usageMetadata, as the API does."""

    def __init__(self, *, model: str, request_id: str, include_usage: bool = True) -> None:
        self.model = model
        self.id = request_id
        self._calls: dict[int, Json] = {}
        self._finish: str | None = None
        self._done = False

    def encode(self, chunk: Json) -> list[Event]:
        if self._done:
            return []
        events: list[Event] = []
        for piece in c.read_chunk(chunk):
            if piece.kind == "reasoning":
                events.append(self._frame([{"text": piece.text, "thought": True}]))
            elif piece.kind == "text":
                events.append(self._frame([{"text": piece.text}]))
            elif piece.kind == "tool_start":
                self._calls[piece.index] = {"id": piece.id, "name": piece.name, "args": "",
                                            "ext": piece.call_ext or {}}
            elif piece.kind == "tool_args" and piece.index in self._calls:
                self._calls[piece.index]["args"] += piece.text
            elif piece.kind == "finish":
                self._finish = FINISH_FROM_CANONICAL.get(piece.text, "STOP")
            elif piece.kind == "usage":
                events.extend(self._end(piece.usage))
        return events

    def _frame(self, parts: list[Json], finish: str | None = None,
               usage: c.Usage | None = None) -> Event:
        candidate: Json = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        frame: Json = {"candidates": [candidate]}
        if usage is not None:
            frame["usageMetadata"] = usage_from_canonical(usage)
        frame.update(modelVersion=self.model, responseId=self.id)
        return ("", frame)

    def _end(self, usage: c.Usage | None) -> list[Event]:
        if self._done:
            return []
        self._done = True
        parts = []
        for index in sorted(self._calls):
            call = self._calls[index]
            part: Json = {"functionCall": {"id": call["id"], "name": call["name"],
                                           "args": c.loads_object(call["args"])}}
            if call["ext"].get("thought_signature"):
                part["thoughtSignature"] = call["ext"]["thought_signature"]
            parts.append(part)
        return [self._frame(parts, self._finish or "STOP", usage or c.Usage())]

    def finish(self) -> list[Event]:
        return self._end(None)

    def error(self, status: int, message: str, type_: str) -> list[Event]:
        self._done = True
        return [("", error_body(status, message, type_=type_))]
