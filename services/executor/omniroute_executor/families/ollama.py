"""Ollama's native chat API (`POST {base_url}/api/chat`; base_url has no /v1), streamed as
NDJSON. Ollama streams unless told otherwise, so the stream flag is always sent."""

from __future__ import annotations

from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Family, Json, json_headers


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    body["stream"] = stream
    # A key is only needed behind an authenticating proxy or Ollama's cloud.
    headers = json_headers(target, {"authorization": f"Bearer {target.api_key}"})
    return f"{target.base_url}/api/chat", headers


def _ends(event: str, data: Json) -> bool:
    return data.get("done") is True


OLLAMA = Family(
    name="ollama",
    prepare=_prepare,
    ends_stream=_ends,
)
