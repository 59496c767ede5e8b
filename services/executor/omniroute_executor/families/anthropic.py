"""Anthropic Messages (`POST {base_url}/messages`; base_url ends in /v1, added by
omniroute.targets when the configured one has no version segment), and every provider
that speaks it (anthropic-compatible)."""

from __future__ import annotations

from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Family, Json, json_headers

API_VERSION = "2023-06-01"


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    body["stream"] = stream
    # The version header goes first so that a provider's configured headers may pin another.
    headers = {"anthropic-version": API_VERSION,
               **json_headers(target, {"x-api-key": target.api_key})}
    return f"{target.base_url}/messages", headers


def _ends(event: str, data: Json) -> bool:
    return (event or data.get("type")) == "message_stop"


ANTHROPIC = Family(
    name="anthropic",
    prepare=_prepare,
    ends_stream=_ends,
    # Beta features the caller's body uses (context_management, mid-conversation system …).
    caller_headers=("anthropic-beta",),
)
