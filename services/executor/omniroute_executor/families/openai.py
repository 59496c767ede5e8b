"""OpenAI chat completions, and every provider that speaks it (OpenAI-compatible)."""

from __future__ import annotations

from omniroute.formats import openai_chat
from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Family, Json, json_headers, openai_url


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    if stream:
        # Usage is always asked for: accounting needs it even when the caller did not.
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
    headers = json_headers(target, {"authorization": f"Bearer {target.api_key}"})
    return openai_url(target, "chat/completions"), headers


def _usage_only(data: Json) -> bool:
    return data.get("choices") == [] and "usage" in data


OPENAI = Family(
    name="openai",
    prepare=_prepare,
    end_marker="[DONE]",
    accounting_only=_usage_only,
    caller_wants_usage=openai_chat.wants_usage_in_stream,
)
