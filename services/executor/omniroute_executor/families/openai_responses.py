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


OPENAI_RESPONSES = Family(
    name="openai-responses",
    prepare=_prepare,
    ends_stream=_ends,
)
