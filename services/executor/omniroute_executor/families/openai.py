"""OpenAI chat completions, and every provider that speaks it (OpenAI-compatible)."""

from __future__ import annotations

from omniroute.formats import openai_chat
from omniroute.v1 import common_pb2, executor_pb2

from omniroute_executor.families.base import Family, Json, StreamedEvent


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    if stream:
        # Usage is always asked for: accounting needs it even when the caller did not.
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
    headers = {"content-type": "application/json", **dict(target.headers)}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    return f"{target.base_url}/chat/completions", headers


def usage_from_json(usage: object) -> common_pb2.Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return common_pb2.Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0) if isinstance(prompt_details, dict) else 0,
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0)
        if isinstance(completion_details, dict) else 0)


def _usage_of_event(event: StreamedEvent) -> common_pb2.Usage | None:
    return usage_from_json(event.data.get("usage"))


def _usage_of_response(body: Json) -> common_pb2.Usage | None:
    return usage_from_json(body.get("usage"))


OPENAI = Family(
    name="openai",
    native_format=common_pb2.OPENAI_CHAT,
    prepare=_prepare,
    to_provider_request=openai_chat.canonical_to_request,
    response_to_canonical=lambda body: body,
    usage_of_response=_usage_of_response,
    usage_of_event=_usage_of_event,
    parse_error=openai_chat.parse_error,
)
