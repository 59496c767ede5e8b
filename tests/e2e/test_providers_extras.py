"""Issue 6's last pieces through the running stack: custom models (/api/provider-models) listed by
/v1/models and the per-kind lists; Gemini :countTokens answered by the provider's own countTokens;
transcription usage rows carrying the audio duration."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    session = gateway.admin_client()
    yield session


def _auth(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.api_key}"}


def _listed(gateway: Gateway, path: str) -> set[str]:
    answer = httpx.get(f"{gateway.url}{path}", headers=_auth(gateway))
    assert answer.status_code == 200, answer.text
    return {m["id"] for m in answer.json()["data"]}


def test_custom_models_are_listed_by_kind(gateway: Gateway, admin: httpx.Client) -> None:
    added = [("myopenai", "ft-listed", "chat"), ("mygemini", "emb-custom", "embedding"),
             ("pv-xai", "img-custom", "image")]
    for provider, model, kind in added:
        created = admin.post("/api/provider-models", json={"provider": provider, "model": model, "kind": kind})
        assert created.status_code == 201, created.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)
    try:
        ids = wait_for(lambda: (lambda ids: ids if "pv-xai/img-custom" in ids else None)(
            {m.id for m in client.models.list()}), timeout=5)
        assert {"myopenai/ft-listed", "mygemini/emb-custom", "pv-xai/img-custom"} <= ids
        embeddings, images = _listed(gateway, "/v1/embeddings"), _listed(gateway, "/v1/images/generations")
        assert "mygemini/emb-custom" in embeddings and "myopenai/ft-listed" not in embeddings
        assert "pv-xai/img-custom" in images and "mygemini/emb-custom" not in images
        # A custom chat model is usable as well as listed.
        answer = client.chat.completions.create(model="myopenai/ft-listed",
                                                messages=[{"role": "user", "content": "custom"}])
        assert answer.choices[0].message.content
    finally:
        for provider, model, kind in added:
            admin.delete("/api/provider-models", params={"provider": provider, "model": model, "kind": kind})
    wait_for(lambda: "pv-xai/img-custom" not in {m.id for m in client.models.list()}, timeout=5)


def test_gemini_count_tokens_on_the_provider(gateway: Gateway, mock_upstream: MockServer) -> None:
    url = f"{gateway.url}/v1beta/models/mygemini/mock-text:countTokens"
    key = {"x-goog-api-key": gateway.api_key}
    turns = [{"role": "user", "parts": [{"text": "one two three four"}]}]
    counted = httpx.post(url, headers=key, json={"contents": turns})
    assert counted.status_code == 200, counted.text
    assert counted.headers["x-omniroute-token-count"] == "provider"
    sent = mock_upstream.last(path=":countTokens")
    assert sent.path == "/v1beta/models/mock-text:countTokens"
    assert sent.headers["x-goog-api-key"] == "gm-upstream" and sent.body == {"contents": turns}
    assert counted.json()["totalTokens"] > 0
    # A system instruction is only counted inside a whole generateContentRequest.
    system = {"parts": [{"text": "be terse"}]}
    wrapped = httpx.post(url, headers=key, json={"generateContentRequest": {
        "model": "models/mygemini/mock-text", "contents": turns, "systemInstruction": system}})
    assert wrapped.status_code == 200 and wrapped.headers["x-omniroute-token-count"] == "provider"
    assert mock_upstream.last(path=":countTokens").body == {"generateContentRequest": {
        "model": "models/mock-text", "contents": turns, "systemInstruction": system}}
    # Another family's model (its count API takes no Gemini body) is counted locally.
    local = httpx.post(f"{gateway.url}/v1beta/models/myanthropic/mock-text:countTokens", headers=key,
                       json={"contents": turns})
    assert local.status_code == 200 and local.headers["x-omniroute-token-count"] != "provider"
    # And an Anthropic count never reaches a Gemini countTokens with an Anthropic body.
    mock_upstream.clear()
    other = httpx.post(f"{gateway.url}/v1/messages/count_tokens", headers={"x-api-key": gateway.api_key},
                       json={"model": "mygemini/mock-text", "messages": [{"role": "user", "content": "hi"}]})
    assert other.status_code == 200 and other.headers["x-omniroute-token-count"] != "provider"
    assert not mock_upstream.requests(path=":countTokens")


AUDIO = b"RIFF" + b"\x00" * 63996  # 64000 bytes: the mock says 2.0 s


@pytest.mark.parametrize("model", ["myopenai/whisper-1", "pv-deepgram/nova-3", "pv-assembly/best"])
def test_transcription_usage_carries_the_audio_duration(gateway: Gateway, admin: httpx.Client,
                                                        model: str) -> None:
    raw = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=_auth(gateway),
                     files={"file": ("talk.wav", io.BytesIO(AUDIO), "audio/wav")}, data={"model": model})
    assert raw.status_code == 200, raw.text
    assert raw.json()["duration"] == 2.0
    row = gateway.usage_row(raw.headers["x-request-id"])
    # Seconds of audio in their own column; no token counts made up from them.
    assert (row["audio_seconds"], row["input_tokens"], row["output_tokens"]) == (2.0, 0, 0)
    assert row["status"] == 200 and row["provider"] == model.split("/")[0]
    logged = admin.get("/api/usage/request-logs", params={"requestId": raw.headers["x-request-id"]})
    assert logged.json()["requests"][0]["audioSeconds"] == 2.0


def test_other_requests_have_no_audio_seconds(gateway: Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/embeddings", headers=_auth(gateway),
                     json={"model": "myopenai/text-embedding-3-small", "input": "one two"})
    assert raw.status_code == 200, raw.text
    assert gateway.usage_row(raw.headers["x-request-id"])["audio_seconds"] is None
