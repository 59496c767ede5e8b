"""Pure pieces of issue 6: the catalog data, embeddings/images/transcription translations, auth
headers per style, proxy selection and the per-proxy client pool."""

from __future__ import annotations

import asyncio
import base64
import struct
from dataclasses import replace

import httpx
import pytest

from omniroute import catalog, oauth
from omniroute.config.snapshot import ConfigSnapshot, Connection, Provider
from omniroute.formats import FormatError, embeddings, images, transcription
from omniroute.secrets import Crypto, generate_master_key
from omniroute.targets import proxy_for
from omniroute.v1 import executor_pb2
from omniroute_executor.clients import HttpClients, new_client
from omniroute_executor.families.base import auth_headers, openai_url, with_query_key
from omniroute_router.selection.account_limits import connection_limits


def test_catalog_is_data_with_every_required_type() -> None:
    assert len(catalog.PROVIDER_TYPES) >= 25
    assert catalog.provider_type("azure-openai").url_style == "azure"  # type: ignore[union-attr]
    assert catalog.provider_type("assemblyai").auth == "raw"  # type: ignore[union-attr]
    assert catalog.provider_type("nope") is None
    assert catalog.auth_style("openai-compatible", {"auth": "x-api-key"}) == "x-api-key"
    assert catalog.auth_style("gemini", {}) == "x-goog-api-key"
    prefixes = [t.prefix for t in catalog.PROVIDER_TYPES.values() if t.prefix]
    assert len(prefixes) == len(set(prefixes))


@pytest.mark.parametrize(("style", "expected"), [
    ("bearer", {"authorization": "Bearer k"}), ("oauth", {"authorization": "Bearer k"}),
    ("x-api-key", {"x-api-key": "k"}), ("x-goog-api-key", {"x-goog-api-key": "k"}),
    ("api-key", {"api-key": "k"}), ("token", {"authorization": "Token k"}), ("raw", {"authorization": "k"}),
    ("query-key", {}), ("", {"x-default": "k"})])
def test_auth_headers(style: str, expected: dict[str, str]) -> None:
    target = executor_pb2.Target(api_key="k", auth=style)
    assert auth_headers(target, {"x-default": "k"}) == expected


def test_query_key_and_azure_urls() -> None:
    target = executor_pb2.Target(api_key="k y", auth="query-key", base_url="https://g/v1beta")
    assert with_query_key(target, "https://g/v1beta/models/m:generateContent") == \
        "https://g/v1beta/models/m:generateContent?key=k+y"
    azure = executor_pb2.Target(base_url="https://r.openai.azure.com", model="my deploy",
                                params={"url_style": "azure", "api_version": "2024-06-01"})
    assert openai_url(azure, "embeddings") == \
        "https://r.openai.azure.com/openai/deployments/my%20deploy/embeddings?api-version=2024-06-01"


def test_gemini_embeddings_round_trip() -> None:
    body = {"model": "g/text-embedding-004", "input": ["a b", "c"], "dimensions": 3}
    sent = embeddings.to_gemini_batch(body, "text-embedding-004")
    assert sent["requests"][0] == {"model": "models/text-embedding-004",
                                   "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 3}
    answer = embeddings.from_gemini({"embeddings": [{"values": [1, 0, 0]}, {"values": [0, 1, 0]}]},
                                    "text-embedding-004", ["a b", "c"], "base64")
    assert answer["usage"]["prompt_tokens"] == 3 and answer["data"][1]["index"] == 1
    assert struct.unpack("<3f", base64.b64decode(answer["data"][1]["embedding"])) == (0.0, 1.0, 0.0)
    single = embeddings.from_gemini({"embedding": {"values": [0.5]}}, "m", ["x"])
    assert single["data"][0]["embedding"] == [0.5]


def test_ollama_embeddings_and_errors() -> None:
    assert embeddings.to_ollama({"input": "hi"}, "nomic") == {"model": "nomic", "input": "hi"}
    assert embeddings.to_ollama({"input": ["a", "b"], "dimensions": 8}, "n")["input"] == ["a", "b"]
    answer = embeddings.from_ollama({"embeddings": [[1, 2]], "prompt_eval_count": 4}, "n")
    assert answer["usage"]["total_tokens"] == 4
    with pytest.raises(FormatError):
        embeddings.inputs({"input": [[1, 2, 3]]})
    with pytest.raises(FormatError):
        embeddings.validate_request({"model": "m", "input": "x", "encoding_format": "int8"})


def test_imagen_translation() -> None:
    assert images.to_imagen({"prompt": "p", "n": 2, "size": "1024x1792"}) == {
        "instances": [{"prompt": "p"}], "parameters": {"sampleCount": 2, "aspectRatio": "9:16"}}
    out = images.from_imagen({"predictions": [{"bytesBase64Encoded": "QUJD", "mimeType": "image/png"}]}, "p")
    assert out["data"] == [{"b64_json": "QUJD", "revised_prompt": "p"}]
    with pytest.raises(FormatError):
        images.validate_request({"model": "m", "prompt": "p", "n": 11})


def test_transcription_answers() -> None:
    deepgram = {"metadata": {"duration": 3.25}, "results": {"channels": [
        {"alternatives": [{"transcript": "hi there"}], "detected_language": "fr"}]}}
    assert transcription.from_deepgram(deepgram, None) == {"text": "hi there", "task": "transcribe",
                                                            "language": "fr", "duration": 3.25}
    assert transcription.from_assemblyai({"status": "completed", "text": "t", "language_code": "en",
                                          "audio_duration": 12.5})["duration"] == 12.5
    assert transcription.deepgram_query("nova-3", None) == {"model": "nova-3", "smart_format": "true",
                                                            "detect_language": "true"}
    assert transcription.assemblyai_submit("u", "best", "de") == {"audio_url": "u", "speech_model": "best",
                                                                  "language_code": "de"}
    assert transcription.audio_type("a.M4A") == "audio/mp4"
    with pytest.raises(FormatError):
        transcription.audio_type("a.txt", "text/plain")


def _snapshot(stored: dict[str, object]) -> tuple[ConfigSnapshot, Provider, Connection]:
    connection = Connection(id="p:c", provider_id="p", name="c", api_key="k", priority=0, enabled=True,
                            settings={})
    provider = Provider(id="p", type="openai", family="openai", base_url="https://api.example.com/v1",
                        models=(), enabled=True, settings={}, connections=(connection,))
    return ConfigSnapshot(providers={"p": provider}, settings={"proxy": stored}), provider, connection


def test_proxy_selection_most_specific_wins_and_passwords_are_decrypted() -> None:
    crypto = Crypto(generate_master_key())
    stored = {"global": {"url": "http://g:1"}, "providers": {"p": {"url": "http://u@pp:2",
                                                                  "password_enc": crypto.encrypt("s3")}},
              "connections": {}, "no_proxy": []}
    snapshot, provider, connection = _snapshot(stored)
    assert proxy_for(snapshot, provider, connection, crypto) == "http://u:s3@pp:2"
    stored["connections"] = {"p:c": {"url": "http://cc:3", "enabled": True}}
    assert proxy_for(snapshot, provider, connection, crypto) == "http://cc:3"
    stored["connections"] = {"p:c": {"url": "http://cc:3", "enabled": False}}
    assert proxy_for(snapshot, provider, connection, crypto) == "http://u:s3@pp:2"
    own = replace(connection, settings={"proxy": "http://own:4"})
    assert proxy_for(snapshot, provider, own, crypto) == "http://own:4"
    stored["no_proxy"] = ["api.example.com"]
    assert proxy_for(snapshot, provider, own, crypto) == ""


def test_connection_limits() -> None:
    _, _, connection = _snapshot({})
    limited = replace(connection, settings={"rpm": 10, "max_concurrency": 2})
    assert (connection_limits(limited).rpm, connection_limits(limited).concurrency) == (10, 2)
    assert not connection_limits(connection).any


def test_one_pooled_client_per_distinct_proxy() -> None:
    async def run() -> None:
        clients = HttpClients(new_client(5), 5)
        try:
            assert clients.get("") is clients.direct
            first = clients.get("http://proxy-a:3128")
            assert clients.get("http://proxy-a:3128") is first
            assert clients.get("http://proxy-b:3128") is not first
            assert clients.proxied_count == 2
            # SOCKS5 needs the httpx[socks] extra (socksio); without it the client cannot be built.
            assert clients.get("socks5://u:p@proxy-c:1080") is not first
            assert clients.get("socks5h://proxy-d:1080") is not first
            refused = clients.get("gopher://proxy-e:70")
            with pytest.raises(httpx.ProxyError):
                await refused.get("http://upstream.example/")
        finally:
            await clients.aclose()
    asyncio.run(run())


def test_pkce_and_token_state() -> None:
    verifier, challenge = oauth.pkce_pair()
    assert len(verifier) >= 43 and challenge == oauth.challenge_s256(verifier) and "=" not in challenge
    # RFC 7636 appendix B.
    assert oauth.challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    crypto = Crypto(generate_master_key())
    state = oauth.from_token_answer({"access_token": "a", "expires_in": 30}, crypto, "prev")
    assert state.refresh_enc == "prev" and not state.fresh()
    assert oauth.TokenState.loads(state.dumps()) == state
