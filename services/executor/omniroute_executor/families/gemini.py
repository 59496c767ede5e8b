"""Google Gemini (Generative Language API; base_url ends in /v1beta, added by omniroute.targets
when the configured one has no version segment): the model is named in the
URL, `models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for SSE frames."""

from __future__ import annotations

from urllib.parse import quote

from omniroute.v1 import executor_pb2
from omniroute_executor.families.base import Family, Json, json_headers


def _prepare(target: executor_pb2.Target, stream: bool, body: Json) -> tuple[str, dict[str, str]]:
    model = quote(target.model.removeprefix("models/"), safe="/-._~")
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    headers = json_headers(target, {"x-goog-api-key": target.api_key})
    return f"{target.base_url}/models/{model}:{action}", headers


def _no_model_in_body(body: Json, model: str) -> None:
    """The model is in the URL; a passthrough body keeps whatever the caller sent."""


def _ends(event: str, data: Json) -> bool:
    # The API has no end event: the last frame is the one whose candidate has a finishReason
    # (or a prompt blocked outright, reported in promptFeedback without candidates).
    candidates = data.get("candidates") or []
    if not candidates:
        return bool((data.get("promptFeedback") or {}).get("blockReason"))
    return bool(candidates[0].get("finishReason")) if isinstance(candidates[0], dict) else False


GEMINI = Family(
    name="gemini",
    prepare=_prepare,
    put_model=_no_model_in_body,
    ends_stream=_ends,
)
