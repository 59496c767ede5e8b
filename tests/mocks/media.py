"""Embeddings, images and speech-to-text beyond OpenAI's own routes, and Azure OpenAI's
deployment paths. Each checks the credential the way its provider expects it, so a gateway that
sends the wrong auth style gets the provider's own 401/403.

- Gemini: ``POST /v1beta/models/{m}:batchEmbedContents``, ``:embedContent``, ``:predict`` (Imagen)
  — ``x-goog-api-key`` or ``?key=``.
- Ollama: ``POST /api/embed``.
- OpenAI whisper: ``POST /v1/audio/transcriptions`` (multipart ``file``, ``model``) — Bearer.
- Deepgram: ``POST /v1/listen?model=…`` (raw audio body), ``GET /v1/projects`` —
  ``Authorization: Token <key>``.
- AssemblyAI: ``POST /v2/upload`` (raw bytes) → ``upload_url``; ``POST /v2/transcript``
  → ``{"id", "status": "queued"}``; ``GET /v2/transcript/{id}`` → ``processing`` on the first poll,
  ``completed`` on the next; ``GET /v2/transcript`` lists — ``Authorization: <key>`` (no scheme).
- Azure OpenAI: ``/openai/deployments/{deployment}/chat/completions|embeddings|
  images/generations|audio/transcriptions?api-version=…`` and ``GET /openai/models`` —
  ``api-key: <key>`` header and ``api-version`` required; the deployment is the model.

The transcript of any audio is ``MOCK_TRANSCRIPT``; its duration is the byte size / 32000
(16 kHz 16-bit mono), so tests can predict it.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import gemini, openai_chat
from .common import count_words, new_id
from .openai_chat import PNG_1X1, embedding_vector
from .serving import json_response, receive

MOCK_TRANSCRIPT = "Hello from the mock transcription service."
_transcripts: dict[str, dict[str, Any]] = {}
_polls = itertools.count()


def duration_of(audio: bytes) -> float:
    return round(len(audio) / 32000, 3)


# --- Gemini --------------------------------------------------------------------------------

_GEMINI_METHODS = ("embedContent", "batchEmbedContents", "predict")


async def gemini_embed_or_predict(request: Request) -> Response:
    model, method = request.path_params["model"], request.path_params["method"]
    if method not in _GEMINI_METHODS:  # generateContent & co: the chat mock
        request.scope["path_params"] = {"target": f"{model}:{method}"}
        return await gemini.model_action(request)
    inc = await receive(request, "gemini")
    if (denied := gemini.check_auth(request)) is not None:
        return denied
    body = inc.json
    if method == "embedContent":
        text = " ".join(p.get("text", "") for p in (body.get("content") or {}).get("parts") or [])
        dims = body.get("outputDimensionality") or 16
        vector = embedding_vector(text, dims)
        return json_response({"embedding": {"values": vector}}, headers=gemini.headers())
    if method == "batchEmbedContents":
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return gemini.error_response(400, "* BatchEmbedContentsRequest.requests: is empty")
        out = []
        for item in requests:
            if item.get("model") != f"models/{model}":
                return gemini.error_response(400, f"Model mismatch: {item.get('model')} vs models/{model}")
            text = " ".join(p.get("text", "") for p in (item.get("content") or {}).get("parts") or [])
            out.append({"values": embedding_vector(text, item.get("outputDimensionality") or 16)})
        return json_response({"embeddings": out}, headers=gemini.headers())
    if method == "predict":
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances or not instances[0].get("prompt"):
            return gemini.error_response(400, "instances[0].prompt is required")
        count = int((body.get("parameters") or {}).get("sampleCount") or 1)
        return json_response({"predictions": [{"bytesBase64Encoded": PNG_1X1, "mimeType": "image/png"}
                                              for _ in range(count)]}, headers=gemini.headers())
    return gemini.error_response(404, f"Method not found: {method}")


# --- Ollama --------------------------------------------------------------------------------

async def ollama_embed(request: Request) -> Response:
    inc = await receive(request, "ollama")
    body = inc.json
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(body.get("model"), str) or not isinstance(texts, list) or not texts:
        return json_response({"error": "model and input are required"}, 400)
    dims = body.get("dimensions") or 16
    return json_response({"model": body["model"],
                          "embeddings": [embedding_vector(str(t), dims) for t in texts],
                          "total_duration": 1000, "load_duration": 10,
                          "prompt_eval_count": sum(count_words(str(t)) for t in texts)})


# --- OpenAI whisper ------------------------------------------------------------------------

def parse_form(request: Request, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name → (filename or None, bytes), with the standard library's MIME parser."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    if message.is_multipart():
        for part in message.iter_parts():  # type: ignore[attr-defined]
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                payload = part.get_payload(decode=True)
                fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


async def whisper(request: Request, family: str = "openai") -> Response:
    inc = await receive(request, family)
    if family == "openai" and (denied := openai_chat.check_auth(request)) is not None:
        return denied
    form = parse_form(request, inc.raw)
    if "file" not in form or not form["file"][1]:
        return openai_chat.error_response(400, "Missing file.", "file")
    model = request.path_params.get("deployment") or (form.get("model") or (None, b""))[1].decode()
    if not model:
        return openai_chat.error_response(400, "Missing model.", "model")
    fmt = (form.get("response_format") or (None, b"json"))[1].decode()
    language = (form.get("language") or (None, b"en"))[1].decode() or "en"
    if fmt == "verbose_json":
        return json_response({"task": "transcribe", "language": "english" if language == "en" else language,
                              "duration": duration_of(form["file"][1]), "text": MOCK_TRANSCRIPT,
                              "segments": []}, headers=openai_chat.headers())
    return json_response({"text": MOCK_TRANSCRIPT}, headers=openai_chat.headers())


# --- Deepgram ------------------------------------------------------------------------------

def _deepgram_auth(request: Request) -> Response | None:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Token ") or not auth[6:].strip() or auth[6:].startswith(("bad", "invalid")):
        return json_response({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                              "request_id": new_id("", 32)}, 401)
    return None


async def deepgram_listen(request: Request) -> Response:
    inc = await receive(request, "deepgram")
    if (denied := _deepgram_auth(request)) is not None:
        return denied
    if not inc.raw:
        return json_response({"err_code": "Bad Request", "err_msg": "No audio data."}, 400)
    if not request.headers.get("content-type", "").startswith("audio/"):
        return json_response({"err_code": "Bad Request", "err_msg": "Unsupported content type."}, 415)
    language = request.query_params.get("language") or "en"
    channel: dict[str, Any] = {"alternatives": [{"transcript": MOCK_TRANSCRIPT, "confidence": 0.98,
                                                 "words": []}]}
    if request.query_params.get("detect_language") == "true":
        channel["detected_language"] = "en"
    return json_response({"metadata": {"request_id": new_id("", 32), "duration": duration_of(inc.raw),
                                       "channels": 1, "models": [request.query_params.get("model", "")]},
                          "results": {"channels": [channel]}, "language": language})


async def deepgram_projects(request: Request) -> Response:
    await receive(request, "deepgram")
    if (denied := _deepgram_auth(request)) is not None:
        return denied
    return json_response({"projects": [{"project_id": "mock-project", "name": "mock"}]})


# --- AssemblyAI ----------------------------------------------------------------------------

def _assemblyai_auth(request: Request) -> Response | None:
    key = request.headers.get("authorization", "")
    if not key or " " in key or key.startswith(("bad", "invalid")):  # the bare key, no scheme
        return json_response({"error": "Authentication error, API token missing/invalid"}, 401)
    return None


async def assemblyai_upload(request: Request) -> Response:
    inc = await receive(request, "assemblyai")
    if (denied := _assemblyai_auth(request)) is not None:
        return denied
    upload_id = new_id("", 16)
    _transcripts[f"upload:{upload_id}"] = {"size": len(inc.raw)}
    return json_response({"upload_url": f"https://cdn.assemblyai.mock/upload/{upload_id}"})


async def assemblyai_submit(request: Request) -> Response:
    inc = await receive(request, "assemblyai")
    if (denied := _assemblyai_auth(request)) is not None:
        return denied
    url = str(inc.json.get("audio_url") or "")
    upload = _transcripts.get(f"upload:{url.rsplit('/', 1)[-1]}")
    if upload is None:
        return json_response({"error": "Invalid audio_url"}, 400)
    tid = new_id("", 20)
    _transcripts[tid] = {"id": tid, "status": "queued", "polls": 0, "size": upload["size"],
                         "speech_model": inc.json.get("speech_model"),
                         "language_code": inc.json.get("language_code") or "en"}
    return json_response({"id": tid, "status": "queued", "audio_url": url})


async def assemblyai_poll(request: Request) -> Response:
    await receive(request, "assemblyai")
    if (denied := _assemblyai_auth(request)) is not None:
        return denied
    item = _transcripts.get(request.path_params["tid"])
    if item is None:
        return json_response({"error": "Transcript not found"}, 404)
    item["polls"] += 1
    if item["polls"] < 2:
        return json_response({"id": item["id"], "status": "processing"})
    return json_response({"id": item["id"], "status": "completed", "text": MOCK_TRANSCRIPT,
                          "language_code": item["language_code"],
                          "audio_duration": duration_of(b"x" * item["size"]),
                          "speech_model": item["speech_model"]})


async def assemblyai_list(request: Request) -> Response:
    await receive(request, "assemblyai")
    if (denied := _assemblyai_auth(request)) is not None:
        return denied
    return json_response({"transcripts": [], "page_details": {"limit": 1}})


# --- Azure OpenAI --------------------------------------------------------------------------

def _azure_auth(request: Request) -> Response | None:
    key = request.headers.get("api-key", "")
    if not key or key.startswith(("bad", "invalid")):
        return json_response({"error": {"code": "401", "message": "Access denied due to invalid "
                                        "subscription key or wrong API endpoint."}}, 401)
    if not request.query_params.get("api-version"):
        return json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
    return None


def _as_openai(request: Request) -> Request:
    """The same request as the OpenAI handlers expect it: bearer auth from api-key (a new Request:
    Starlette caches the headers it has read)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
    headers.append((b"authorization", b"Bearer " + request.headers["api-key"].encode()))
    request.scope["headers"] = headers
    return Request(request.scope, request.receive)


async def azure_deployment(request: Request) -> Response:
    if (denied := _azure_auth(request)) is not None:
        await receive(request, "azure")
        return denied
    operation = request.path_params["operation"]
    request = _as_openai(request)
    handlers = {"chat/completions": openai_chat.chat_completions, "embeddings": openai_chat.embeddings,
                "images/generations": openai_chat.image_generations}
    if operation == "audio/transcriptions":
        return await whisper(request, "azure")
    handler = handlers.get(operation)
    if handler is None:
        await receive(request, "azure")
        return json_response({"error": {"code": "404", "message": "Resource not found"}}, 404)
    return await handler(request)


async def azure_models(request: Request) -> Response:
    await receive(request, "azure")
    if (denied := _azure_auth(request)) is not None:
        return denied
    return json_response({"data": [{"id": "gpt-4o-mini", "object": "model"},
                                   {"id": "text-embedding-3-small", "object": "model"}]})


ROUTES = [
    Route("/v1beta/models/{model}:{method}", gemini_embed_or_predict, methods=["POST"]),
    Route("/api/embed", ollama_embed, methods=["POST"]),
    Route("/v1/audio/transcriptions", whisper, methods=["POST"]),
    Route("/v1/listen", deepgram_listen, methods=["POST"]),
    Route("/v1/projects", deepgram_projects, methods=["GET"]),
    Route("/v2/upload", assemblyai_upload, methods=["POST"]),
    Route("/v2/transcript", assemblyai_submit, methods=["POST"]),
    Route("/v2/transcript", assemblyai_list, methods=["GET"]),
    Route("/v2/transcript/{tid}", assemblyai_poll, methods=["GET"]),
    Route("/openai/deployments/{deployment}/{operation:path}", azure_deployment, methods=["POST"]),
    Route("/openai/models", azure_models, methods=["GET"]),
]
