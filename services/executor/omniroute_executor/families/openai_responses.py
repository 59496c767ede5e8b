"""OpenAI Responses (`POST {base_url}/responses`), for providers that speak only Responses.
Streams are typed SSE events; `response.completed` (or `.incomplete`) ends a whole one."""

from __future__ import annotations

from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Family, Json, json_headers

_END_EVENTS = ("response.completed", "response.incomplete")


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    body["stream"] = stream
    headers = json_headers(target, {"authorization": f"Bearer {target.api_key}"})
    return f"{target.base_url}/responses", headers


def _ends(event: str, data: Json) -> bool:
    return (event or data.get("type")) in _END_EVENTS


def _collect(events: list[tuple[str, Json]]) -> Json:
    """The whole response of a stream: the final event's `response`, its output taken from the
    output_item.done events when it came without one (the ChatGPT backend's may be empty)."""
    final: Json = {}
    items: list[tuple[int, Json]] = []
    for event, data in events:
        kind = event or data.get("type")
        if kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            items.append((int(data.get("output_index") or len(items)), data["item"]))
        elif kind in _END_EVENTS and isinstance(data.get("response"), dict):
            final = dict(data["response"])
    if not final.get("output"):
        final["output"] = [item for _, item in sorted(items, key=lambda pair: pair[0])]
    return final


OPENAI_RESPONSES = Family(
    name="openai-responses",
    prepare=_prepare,
    ends_stream=_ends,
    collect=_collect,
)
