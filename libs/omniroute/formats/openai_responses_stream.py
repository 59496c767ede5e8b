"""OpenAI Responses streams ↔ canonical chunks, and what answers and streams share: output
items, the response object, usage and finish reasons.

The wire order for one answer: `response.created`, `response.in_progress`, then per output
item `response.output_item.added`, its parts and deltas (`response.content_part.added`,
`response.output_text.delta`…, `response.function_call_arguments.delta`…, or
`response.reasoning_summary_*`), their `.done` events and `response.output_item.done`, and
finally `response.completed` (or `response.incomplete`) carrying the whole response with usage.
Every event has a `sequence_number`; the SSE event name equals its `type`.
"""

from __future__ import annotations

from typing import Any

from omniroute.formats import canonical as c
from omniroute.formats.errors import UpstreamStreamError

Json = dict[str, Any]
Event = tuple[str, Json]

_INCOMPLETE_TO_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_FINISH_TO_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage_to_canonical(usage: Any) -> c.Usage:
    if not isinstance(usage, dict):
        return c.Usage()
    input_details = usage.get("input_tokens_details") or {}
    return c.Usage(prompt=usage.get("input_tokens") or 0, completion=usage.get("output_tokens") or 0,
                   cached=input_details.get("cached_tokens") or 0,
                   cache_creation=input_details.get("cache_write_tokens") or 0,
                   reasoning=(usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)


def usage_from_canonical(usage: c.Usage) -> Json:
    # cache_write_tokens: newer SDKs require it; it carries Anthropic's cache writes.
    return {"input_tokens": usage.prompt,
            "input_tokens_details": {"cached_tokens": usage.cached,
                                     "cache_write_tokens": usage.cache_creation},
            "output_tokens": usage.completion,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning},
            "total_tokens": usage.prompt + usage.completion}


def finish_to_canonical(response: Json, has_calls: bool) -> str:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete" and reason in _INCOMPLETE_TO_FINISH:
        return _INCOMPLETE_TO_FINISH[reason]
    return "tool_calls" if has_calls else "stop"


def response_object(*, id_: str, model: str, created: int, output: list[Json],
                    finish: str | None, usage: c.Usage | None, status: str | None = None) -> Json:
    """A `response` object as the API returns it (and as response.completed carries it)."""
    incomplete = _FINISH_TO_INCOMPLETE.get(finish or "")
    return {"id": id_, "object": "response", "created_at": created,
            "status": status or ("incomplete" if incomplete else "completed"),
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete and not status else None,
            "instructions": None, "metadata": {}, "model": model, "output": output,
            "parallel_tool_calls": True, "temperature": None, "tool_choice": "auto", "tools": [],
            "top_p": None, "text": {"format": {"type": "text"}}, "truncation": "disabled",
            "usage": usage_from_canonical(usage) if usage is not None else None}


def reasoning_item(id_: str, text: str) -> Json:
    return {"id": id_, "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else []}


def message_item(id_: str, text: str, status: str = "completed") -> Json:
    return {"id": id_, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
            if status == "completed" else []}


def call_item(id_: str, call_id: str, name: str, arguments: str,
              status: str = "completed") -> Json:
    return {"id": id_, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


# --- decoding --------------------------------------------------------------------------------

class StreamDecoder:
    """Responses upstream events → canonical chunks."""

    def __init__(self) -> None:
        self._build = c.ChunkBuilder()
        self._tools: dict[int, int] = {}  # output_index → canonical tool index
        self._usage: c.Usage | None = None
        self._finished = False

    def feed(self, event: str, data: Json) -> list[Json]:
        kind = event or str(data.get("type", ""))
        if kind in ("response.created", "response.in_progress"):
            response = data.get("response") or {}
            self._build.id = str(response.get("id") or self._build.id)
            self._build.model = str(response.get("model") or self._build.model)
        elif kind == "response.output_item.added":
            return self._item_added(data)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            return [self._build.text(str(data.get("delta", "")))]
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return [self._build.reasoning(str(data.get("delta", "")))]
        elif kind == "response.function_call_arguments.delta":
            index = self._tools.get(int(data.get("output_index", -1)))
            if index is not None and data.get("delta"):
                return [self._build.tool_call(index, arguments=str(data["delta"]))]
        elif kind in ("response.completed", "response.incomplete"):
            return self._completed(data.get("response") or {})
        elif kind in ("response.failed", "error"):
            self._raise(data)
        return []

    def _item_added(self, data: Json) -> list[Json]:
        item = data.get("item") or {}
        if item.get("type") != "function_call":
            return []
        index = len(self._tools)
        self._tools[int(data.get("output_index", index))] = index
        return [self._build.tool_call(index, id_=str(item.get("call_id") or item.get("id")),
                                      name=str(item.get("name", "")),
                                      arguments=str(item.get("arguments") or ""))]

    def _completed(self, response: Json) -> list[Json]:
        self._usage = usage_to_canonical(response.get("usage"))
        if self._finished:
            return []
        self._finished = True
        return [self._build.finish(finish_to_canonical(response, bool(self._tools)))]

    def _raise(self, data: Json) -> None:
        error = data.get("error") or (data.get("response") or {}).get("error") or data
        code = str(error.get("code") or "server_error")
        status = {"rate_limit_exceeded": 429, "invalid_prompt": 400}.get(code, 500)
        raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                  status=status, type_=code)

    def finish(self) -> list[Json]:
        if self._usage is None:
            return []
        usage, self._usage = self._usage, None
        return [self._build.usage(usage)]


# --- encoding --------------------------------------------------------------------------------

class StreamEncoder:
    """Canonical chunks → Responses events, one output item open at a time."""

    def __init__(self, *, model: str, request_id: str, include_usage: bool = True) -> None:
        self.model = model
        self.id = request_id if request_id.startswith("resp_") else f"resp_{request_id}"
        self.created = c.now()
        self._seq = 0
        self._started = False
        self._done = False
        self._output: list[Json] = []  # finished items
        self._open: Json | None = None  # {"kind", "id", "text", "index", + call fields}
        self._finish: str | None = None

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return (kind, event)

    def _response(self, status: str, usage: c.Usage | None = None) -> Json:
        return response_object(id_=self.id, model=self.model, created=self.created,
                               output=list(self._output), finish=self._finish, usage=usage,
                               status=None if status == "done" else status)

    def encode(self, chunk: Json) -> list[Event]:
        if self._done:
            return []
        events = self._start()
        for piece in c.read_chunk(chunk):
            events.extend(self._piece(piece))
        return events

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [self._event("response.created", response=self._response("in_progress")),
                self._event("response.in_progress", response=self._response("in_progress"))]

    def _piece(self, piece: c.Piece) -> list[Event]:
        if piece.kind == "reasoning":
            return self._ensure("reasoning") + self._text_delta(piece.text)
        if piece.kind == "text":
            return self._ensure("message") + self._text_delta(piece.text)
        if piece.kind == "tool_start":
            return self._close() + self._open_item(
                "function_call", call_id=piece.id or c.new_id("call_"), name=piece.name,
                tool_index=piece.index)
        if piece.kind == "tool_args":
            if not self._open or self._open.get("tool_index") != piece.index:
                return []  # arguments for an item already closed cannot be sent any more
            self._open["text"] += piece.text
            return [self._event("response.function_call_arguments.delta",
                                item_id=self._open["id"], output_index=self._open["index"],
                                delta=piece.text)]
        if piece.kind == "finish":
            self._finish = piece.text
            return self._close()
        if piece.kind == "usage":
            return self._end(piece.usage)
        return []

    def _ensure(self, kind: str) -> list[Event]:
        if self._open is not None and self._open["kind"] == kind:
            return []
        return self._close() + self._open_item(kind)

    def _open_item(self, kind: str, **fields: Any) -> list[Event]:
        prefix = {"reasoning": "rs_", "message": "msg_", "function_call": "fc_"}[kind]
        self._open = {"kind": kind, "id": c.new_id(prefix), "text": "",
                      "index": len(self._output), **fields}
        item_id, index = self._open["id"], self._open["index"]
        if kind == "reasoning":
            return [self._event("response.output_item.added", output_index=index,
                                item=reasoning_item(item_id, "")),
                    self._event("response.reasoning_summary_part.added", item_id=item_id,
                                output_index=index, summary_index=0,
                                part={"type": "summary_text", "text": ""})]
        if kind == "message":
            return [self._event("response.output_item.added", output_index=index,
                                item=message_item(item_id, "", status="in_progress")),
                    self._event("response.content_part.added", item_id=item_id,
                                output_index=index, content_index=0,
                                part={"type": "output_text", "text": "", "annotations": [],
                                      "logprobs": []})]
        return [self._event("response.output_item.added", output_index=index,
                            item=call_item(item_id, fields["call_id"], fields["name"], "",
                                           status="in_progress"))]

    def _text_delta(self, text: str) -> list[Event]:
        assert self._open is not None
        self._open["text"] += text
        item_id, index = self._open["id"], self._open["index"]
        if self._open["kind"] == "reasoning":
            return [self._event("response.reasoning_summary_text.delta", item_id=item_id,
                                output_index=index, summary_index=0, delta=text)]
        return [self._event("response.output_text.delta", item_id=item_id, output_index=index,
                            content_index=0, delta=text, logprobs=[])]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        item, self._open = self._open, None
        item_id, index, text = item["id"], item["index"], item["text"]
        if item["kind"] == "reasoning":
            done = reasoning_item(item_id, text)
            part = {"type": "summary_text", "text": text}
            events = [self._event("response.reasoning_summary_text.done", item_id=item_id,
                                  output_index=index, summary_index=0, text=text),
                      self._event("response.reasoning_summary_part.done", item_id=item_id,
                                  output_index=index, summary_index=0, part=part)]
        elif item["kind"] == "message":
            done = message_item(item_id, text)
            events = [self._event("response.output_text.done", item_id=item_id,
                                  output_index=index, content_index=0, text=text, logprobs=[]),
                      self._event("response.content_part.done", item_id=item_id,
                                  output_index=index, content_index=0, part=done["content"][0])]
        else:
            done = call_item(item_id, item["call_id"], item["name"], text)
            events = [self._event("response.function_call_arguments.done", item_id=item_id,
                                  output_index=index, name=item["name"], arguments=text)]
        self._output.append(done)
        return [*events, self._event("response.output_item.done", output_index=index, item=done)]

    def _end(self, usage: c.Usage | None) -> list[Event]:
        if self._done:
            return []
        events = self._start() + self._close()
        self._done = True
        response = self._response("done", usage or c.Usage())
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        return [*events, self._event(kind, response=response)]

    def finish(self) -> list[Event]:
        return self._end(None)

    def error(self, status: int, message: str, type_: str) -> list[Event]:
        self._done = True
        return [self._event("error", code=type_, message=message, param=None)]
