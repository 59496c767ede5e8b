"""Embeddings, images and audio through the running stack (edge → router → executor → mock), per
wire format, with each provider's auth style checked by the mock; plus Azure deployment URLs,
query-key auth, a wrong auth style, the dedicated provider routes and provider-side token counts."""

from __future__ import annotations

import base64
import io
import struct

import httpx
import openai
import pytest

from tests.mocks.media import MOCK_TRANSCRIPT
from tests.mocks.server import MockServer
from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)


def auth(gateway: Gateway) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.api_key}"}


# --- embeddings ------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "path", "header", "value"), [
    ("myopenai/text-embedding-3-small", "/v1/embeddings", "authorization", "Bearer sk-upstream-1"),
    ("pv-mistral/mistral-embed", "/v1/embeddings", "authorization", "Bearer mi-key"),
    ("pv-together/BAAI/bge-large-en-v1.5", "/v1/embeddings", "authorization", "Bearer tg-key"),
    ("pv-azure/text-embedding-3-small", "/openai/deployments/text-embedding-3-small/embeddings",
     "api-key", "az-key"),
])
def test_openai_shaped_embeddings(gateway: Gateway, mock_upstream: MockServer, model: str, path: str,
                                  header: str, value: str) -> None:
    raw = client(gateway).embeddings.with_raw_response.create(model=model, input=["one two", "three"],
                                                              dimensions=8)
    answer = raw.parse()
    assert [len(d.embedding) for d in answer.data] == [8, 8]
    sent = mock_upstream.last(path=path)
    assert sent.headers[header] == value
    assert sent.body["model"] == model.split("/", 1)[1]
    row = gateway.usage_row(raw.headers["x-request-id"])
    assert (row["provider"], row["input_tokens"], row["status"]) == (model.split("/")[0], 3, 200)


def test_gemini_embeddings_are_translated_to_batch_embed_contents(gateway: Gateway,
                                                                  mock_upstream: MockServer) -> None:
    answer = client(gateway).embeddings.create(model="mygemini/text-embedding-004",
                                               input=["alpha beta", "gamma"], dimensions=4)
    assert [d.index for d in answer.data] == [0, 1] and len(answer.data[0].embedding) == 4
    sent = mock_upstream.last(path=":batchEmbedContents")
    assert sent.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent.headers["x-goog-api-key"] == "gm-upstream"
    assert sent.body["requests"][1] == {"model": "models/text-embedding-004",
                                        "content": {"parts": [{"text": "gamma"}]}, "outputDimensionality": 4}


def test_base64_embeddings_from_a_float_only_provider(gateway: Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/embeddings", headers=auth(gateway), json={
        "model": "mygemini/text-embedding-004", "input": "alpha", "dimensions": 4,
        "encoding_format": "base64"})
    assert raw.status_code == 200, raw.text
    packed = base64.b64decode(raw.json()["data"][0]["embedding"])
    assert len(struct.unpack("<4f", packed)) == 4


def test_ollama_embeddings_use_api_embed(gateway: Gateway, mock_upstream: MockServer) -> None:
    answer = client(gateway).embeddings.create(model="myollama/nomic-embed-text", input="hello there")
    assert len(answer.data) == 1 and len(answer.data[0].embedding) == 16
    assert answer.usage.prompt_tokens == 2
    assert mock_upstream.last(path="/api/embed").body == {"model": "nomic-embed-text", "input": "hello there"}


def test_embeddings_errors(gateway: Gateway) -> None:
    missing = httpx.post(f"{gateway.url}/v1/embeddings", headers=auth(gateway), json={"model": "x/y"})
    assert missing.status_code == 400 and "'input'" in missing.json()["error"]["message"]
    audio_only = httpx.post(f"{gateway.url}/v1/embeddings", headers=auth(gateway),
                            json={"model": "pv-deepgram/nova-3", "input": "hi"})
    assert audio_only.status_code == 400
    assert "does not serve embeddings" in audio_only.json()["error"]["message"]


def test_model_lists_by_kind(gateway: Gateway) -> None:
    listed = httpx.get(f"{gateway.url}/v1/embeddings", headers=auth(gateway)).json()["data"]
    assert {"pv-mistral/mistral-embed", "pv-together/BAAI/bge-large-en-v1.5"} <= {m["id"] for m in listed}
    images = httpx.get(f"{gateway.url}/v1/images/generations", headers=auth(gateway)).json()["data"]
    assert {"pv-xai/grok-2-image", "pv-fireworks/flux-1-schnell-fp8"} <= {m["id"] for m in images}


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "key"), [
    ("myopenai/dall-e-3", "sk-upstream-1"), ("pv-xai/grok-2-image", "xai-key"),
    ("pv-together/black-forest-labs/FLUX.1-schnell", "tg-key"),
    ("pv-fireworks/flux-1-schnell-fp8", "fw-key"),
])
def test_openai_shaped_images(gateway: Gateway, mock_upstream: MockServer, model: str, key: str) -> None:
    answer = client(gateway).images.generate(model=model, prompt="a red cat", n=2)
    assert answer.data is not None and len(answer.data) == 2 and answer.data[0].url
    sent = mock_upstream.last(path="/v1/images/generations")
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.body["model"] == model.split("/", 1)[1]


def test_imagen_predict(gateway: Gateway, mock_upstream: MockServer) -> None:
    answer = client(gateway).images.generate(model="mygemini/imagen-3.0-generate-002", prompt="a dog",
                                             n=2, size="1792x1024")
    assert answer.data is not None and len(answer.data) == 2
    assert base64.b64decode(answer.data[0].b64_json or "")[:4] == b"\x89PNG"
    sent = mock_upstream.last(path=":predict")
    assert sent.body == {"instances": [{"prompt": "a dog"}],
                         "parameters": {"sampleCount": 2, "aspectRatio": "16:9"}}


# --- audio -----------------------------------------------------------------------------------

AUDIO = b"RIFF" + b"\x00" * 63996  # 64000 bytes: the mock says 2.0 s


@pytest.mark.parametrize(("model", "path", "header", "value"), [
    ("myopenai/whisper-1", "/v1/audio/transcriptions", "authorization", "Bearer sk-upstream-1"),
    ("pv-deepgram/nova-3", "/v1/listen", "authorization", "Token dg-key"),
    ("pv-assembly/best", "/v2/transcript", "authorization", "aai-key"),
    ("pv-azure/whisper", "/openai/deployments/whisper/audio/transcriptions", "api-key", "az-key"),
])
def test_transcriptions(gateway: Gateway, mock_upstream: MockServer, model: str, path: str,
                        header: str, value: str) -> None:
    raw = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(gateway),
                     files={"file": ("talk.wav", io.BytesIO(AUDIO), "audio/wav")},
                     data={"model": model, "language": "en"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["text"] == MOCK_TRANSCRIPT and raw.json()["task"] == "transcribe"
    assert raw.json()["duration"] == 2.0 and raw.json()["language"] in ("en", "english")
    assert mock_upstream.last(path=path).headers[header] == value
    assert gateway.usage_row(raw.headers["x-request-id"])["provider"] == model.split("/")[0]


def test_deepgram_gets_raw_audio(gateway: Gateway, mock_upstream: MockServer) -> None:
    raw = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(gateway),
                     files={"file": ("talk.mp3", io.BytesIO(b"ID3" + b"\x01" * 100), "audio/mpeg")},
                     data={"model": "pv-deepgram/nova-3"})
    assert raw.status_code == 200, raw.text
    sent = mock_upstream.last(path="/v1/listen")
    assert sent.raw_body == b"ID3" + b"\x01" * 100
    assert sent.headers["content-type"] == "audio/mpeg" and sent.query["model"] == "nova-3"


def test_transcription_limits_and_formats(gateway: Gateway) -> None:
    too_big = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(gateway),
                         files={"file": ("big.wav", io.BytesIO(b"\x00" * (26 * 1024 * 1024)), "audio/wav")},
                         data={"model": "myopenai/whisper-1"})
    assert too_big.status_code == 413 and "too large" in too_big.json()["error"]["message"]
    wrong = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(gateway),
                       files={"file": ("notes.txt", io.BytesIO(b"hello"), "text/plain")},
                       data={"model": "myopenai/whisper-1"})
    assert wrong.status_code == 400 and "mp3, wav, m4a, flac, ogg or webm" in wrong.json()["error"]["message"]
    no_model = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(gateway),
                          files={"file": ("a.ogg", io.BytesIO(b"OggS"), "audio/ogg")})
    assert no_model.status_code == 400 and "'model'" in no_model.json()["error"]["message"]


# --- auth styles, Azure chat, provider routes, token counts ----------------------------------

def test_azure_chat_uses_deployment_url_and_api_key(gateway: Gateway, mock_upstream: MockServer) -> None:
    answer = client(gateway).chat.completions.create(model="pv-azure/gpt-4o-mini",
                                                     messages=[{"role": "user", "content": "hi"}])
    assert (answer.choices[0].message.content or "").startswith("Hello from mock openai")
    sent = mock_upstream.last(path="/openai/deployments/")
    assert sent.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert sent.query["api-version"] == "2024-10-21" and sent.headers["api-key"] == "az-key"


def test_query_key_auth(gateway: Gateway, mock_upstream: MockServer) -> None:
    answer = client(gateway).chat.completions.create(model="pv-gemq/mock-text",
                                                     messages=[{"role": "user", "content": "hi"}])
    assert (answer.choices[0].message.content or "").startswith("Hello from mock gemini")
    sent = mock_upstream.last(family="gemini", path=":generateContent")
    assert sent.query["key"] == "gq-key" and "x-goog-api-key" not in sent.headers


def test_wrong_auth_style_is_refused_by_the_provider(gateway: Gateway, mock_upstream: MockServer) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        client(gateway).chat.completions.create(model="pv-wrongauth/mock-text",
                                                messages=[{"role": "user", "content": "hi"}])
    assert failed.value.status_code == 401
    sent = mock_upstream.last(path="/v1/chat/completions")
    assert sent.headers["x-api-key"] == "wa-key" and "authorization" not in sent.headers


def test_dedicated_provider_routes(gateway: Gateway, mock_upstream: MockServer) -> None:
    chat = httpx.post(f"{gateway.url}/v1/providers/myopenai/chat/completions", headers=auth(gateway),
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200, chat.text
    assert mock_upstream.last(path="/v1/chat/completions").body["model"] == "gpt-4o-mini"
    prefixed = httpx.post(f"{gateway.url}/v1/providers/myopenai/embeddings", headers=auth(gateway),
                          json={"model": "myopenai/text-embedding-3-small", "input": "x"})
    assert prefixed.status_code == 200, prefixed.text
    image = httpx.post(f"{gateway.url}/v1/providers/pv-xai/images/generations", headers=auth(gateway),
                       json={"model": "grok-2-image", "prompt": "a boat"})
    assert image.status_code == 200 and mock_upstream.last(path="/v1/images/generations").body["model"] \
        == "grok-2-image"
    other = httpx.post(f"{gateway.url}/v1/providers/myopenai/chat/completions", headers=auth(gateway),
                       json={"model": "myanthropic/mock-text",
                             "messages": [{"role": "user", "content": "hi"}]})
    assert other.status_code == 400 and "belongs to the provider" in other.json()["error"]["message"]
    other_emb = httpx.post(f"{gateway.url}/v1/providers/myopenai/embeddings", headers=auth(gateway),
                           json={"model": "mygemini/text-embedding-004", "input": "x"})
    assert other_emb.status_code == 400


def test_anthropic_counts_tokens_on_the_provider(gateway: Gateway, mock_upstream: MockServer) -> None:
    body = {"model": "myanthropic/mock-text", "messages": [{"role": "user", "content": "one two three"}]}
    counted = httpx.post(f"{gateway.url}/v1/messages/count_tokens",
                         headers={"x-api-key": gateway.api_key}, json=body)
    assert counted.status_code == 200, counted.text
    assert counted.headers["x-omniroute-token-count"] == "provider"
    sent = mock_upstream.last(path="/v1/messages/count_tokens")
    assert sent.body["model"] == "mock-text" and sent.headers["x-api-key"] == "sk-ant-upstream"
    assert counted.json()["input_tokens"] > 0
    local = httpx.post(f"{gateway.url}/v1/messages/count_tokens", headers={"x-api-key": gateway.api_key},
                       json={**body, "model": "myopenai/gpt-4o-mini"})
    assert local.status_code == 200 and local.headers["x-omniroute-token-count"] != "provider"
