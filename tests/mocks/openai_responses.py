"""Family ``openai-responses``: ``POST /v1/responses`` (JSON and typed SSE).

Every SSE frame is ``event: <type>\\ndata: {"type":<type>,"sequence_number":n,...}\\n\\n``:
``response.created``, ``response.in_progress``, then per output item ``response.output_item.added``
… ``response.output_item.done`` (``response.content_part.added`` / ``response.output_text.delta`` /
``.done`` / ``response.content_part.done`` for a message; ``response.function_call_arguments.delta``
/ ``.done`` for a function call; ``response.reasoning_summary_part.added`` /
``response.reasoning_summary_text.delta`` … for a reasoning summary), and ``response.completed``
(or ``response.incomplete`` for max_output_tokens / content_filter) with usage. A mid-stream failure
is ``event: error`` followed by ``response.failed``; there is no ``[DONE]``. Errors and headers are
the ``openai`` family's.

``mock-reasoning`` always adds a reasoning item (a reasoning model); its summary text is filled only
when the request sets ``reasoning.summary``, and ``encrypted_content`` only when ``include`` asks
for ``reasoning.encrypted_content``, as the real API does.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import openai_chat
from .common import Script, build_script, new_id
from .serving import MockDrop, first_byte_delay, json_response, receive, sse, stream_response

FAMILY = "openai-responses"


def usage(s: Script) -> dict[str, Any]:
    return {
        "input_tokens": s.input_tokens,
        "input_tokens_details": {"cached_tokens": s.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": s.output_tokens,
        "output_tokens_details": {"reasoning_tokens": s.reasoning_tokens},
        "total_tokens": s.input_tokens + s.output_tokens,
    }


def _reasoning(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("reasoning")
    return value if isinstance(value, dict) else {}


class _Ids:
    def __init__(self) -> None:
        self.response = new_id("resp_", 48)
        self.reasoning = new_id("rs_", 48)
        self.message = new_id("msg_", 48)
        self.calls = [new_id("fc_", 48) for _ in range(4)]


def _status(s: Script) -> tuple[str, dict[str, str] | None]:
    if s.finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if s.finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_items(s: Script, body: dict[str, Any], ids: _Ids) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    status, _ = _status(s)
    if s.reasoning:
        reasoning = _reasoning(body)
        summary = [{"type": "summary_text", "text": s.full_reasoning}] if reasoning.get("summary") else []
        item: dict[str, Any] = {"id": ids.reasoning, "type": "reasoning", "summary": summary}
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = s.signature
        items.append(item)
    if s.text:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": s.full_text}
        items.append(
            {"id": ids.message, "type": "message", "status": status, "content": [part], "role": "assistant"}
        )
    for i, t in enumerate(s.tools):
        items.append(
            {
                "id": ids.calls[i],
                "type": "function_call",
                "status": "completed",
                "arguments": t.json,
                "call_id": f"call_mock{t.index}",
                "name": t.name,
            }
        )
    return items


def response_object(
    s: Script, body: dict[str, Any], ids: _Ids, created: int, *, final: bool
) -> dict[str, Any]:
    status, incomplete = _status(s) if final else ("in_progress", None)
    reasoning = _reasoning(body)
    return {
        "id": ids.response,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if final and status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": s.model,
        "output": output_items(s, body, ids) if final else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage(s) if final else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def events(s: Script, body: dict[str, Any], ids: _Ids) -> list[bytes | MockDrop]:
    created = int(time.time())
    out: list[bytes | MockDrop] = []
    seq = 0

    def emit(etype: str, **fields: Any) -> None:
        nonlocal seq
        out.append(sse({"type": etype, "sequence_number": seq, **fields}, etype))
        seq += 1

    start = response_object(s, body, ids, created, final=False)
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    final_items = output_items(s, body, ids)
    for index, item in enumerate(final_items):
        added = copy.deepcopy(item)
        if item["type"] == "reasoning":
            added["summary"] = []
            emit("response.output_item.added", output_index=index, item=added)
            for si, part in enumerate(item["summary"]):
                common = {"item_id": item["id"], "output_index": index, "summary_index": si}
                emit(
                    "response.reasoning_summary_part.added",
                    **common,
                    part={"type": "summary_text", "text": ""},
                )
                for p in s.reasoning:
                    emit("response.reasoning_summary_text.delta", **common, delta=p)
                emit("response.reasoning_summary_text.done", **common, text=part["text"])
                emit("response.reasoning_summary_part.done", **common, part=part)
        elif item["type"] == "message":
            added.update(status="in_progress", content=[])
            emit("response.output_item.added", output_index=index, item=added)
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit("response.content_part.added", **common, part=empty)
            for n, p in enumerate(s.text):
                if n == 2 and s.drop:
                    out.append(MockDrop())
                    return out
                if n == 2 and s.error_mid:
                    message = "The server had an error while processing your request. Sorry about that!"
                    emit("error", code="server_error", message=message, param=None)
                    failed = response_object(s, body, ids, created, final=False)
                    failed.update(status="failed", error={"code": "server_error", "message": message})
                    emit("response.failed", response=failed)
                    return out
                emit("response.output_text.delta", **common, delta=p, logprobs=[])
            emit("response.output_text.done", **common, text=s.full_text, logprobs=[])
            emit("response.content_part.done", **common, part=item["content"][0])
        else:
            added.update(status="in_progress", arguments="")
            emit("response.output_item.added", output_index=index, item=added)
            tool = s.tools[index - (1 if s.reasoning else 0) - (1 if s.text else 0)]
            for p in tool.pieces:
                emit(
                    "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=p
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=tool.name,
                arguments=tool.json,
            )
        emit("response.output_item.done", output_index=index, item=item)
    final = response_object(s, body, ids, created, final=True)
    emit("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
    return out


async def responses(request: Request) -> Response:
    inc = await receive(request, FAMILY)
    if (denied := openai_chat.check_auth(request)) is not None:
        return denied
    body = inc.json
    if inc.body is None or not isinstance(body.get("model"), str):
        return openai_chat.error_response(400, "Missing required parameter: 'model'.", "model")
    scenario = inc.scenario(body["model"])
    await first_byte_delay(scenario)
    if scenario.name == "error":
        return openai_chat.error_response(scenario.status)
    s = build_script(FAMILY, scenario, body["model"], body)
    ids = _Ids()
    h = openai_chat.headers()
    if not body.get("stream"):
        if s.error_mid or s.drop:
            return openai_chat.error_response(500)
        return json_response(response_object(s, body, ids, int(time.time()), final=True), headers=h)
    return stream_response(events(s, body, ids), scenario, headers=h)


ROUTES = [Route("/v1/responses", responses, methods=["POST"])]
