"""Speech to text on three wire formats: OpenAI (whisper: one multipart POST), Deepgram (one POST
of the raw audio to /v1/listen) and AssemblyAI (upload, submit, then poll until done)."""

from __future__ import annotations

import asyncio
import time

import httpx

from omniroute.formats import FormatError, transcription
from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor.families.base import auth_headers, openai_url, with_query_key
from omniroute_executor.operations.upstream import Json, OperationError, exchange, json_of, refuse

POLL_INTERVAL_S = 0.5


async def transcribe(client: httpx.AsyncClient, target: executor_pb2.Target, body: Json,
                     audio: common_pb2.Attachment, limit: httpx.Timeout) -> Json:
    if not audio.data:
        raise refuse(400, "No audio file was sent.", code="invalid_body")
    language = body.get("language") if isinstance(body.get("language"), str) else None
    try:
        content_type = transcription.audio_type(audio.filename or "audio", audio.content_type)
        if target.family == "openai":
            return await _openai(client, target, body, audio, content_type, language, limit)
        if target.family == "deepgram":
            return await _deepgram(client, target, audio, content_type, language, limit)
        if target.family == "assemblyai":
            return await _assemblyai(client, target, audio, language, limit)
    except FormatError as exc:
        raise refuse(exc.status, exc.message, code="invalid_body") from exc
    raise refuse(400, f"The provider {target.provider_id!r} does not transcribe audio.")


async def _openai(client: httpx.AsyncClient, target: executor_pb2.Target, body: Json,
                  audio: common_pb2.Attachment, content_type: str, language: str | None,
                  limit: httpx.Timeout) -> Json:
    form = {"model": target.model, "response_format": "verbose_json"}
    if language:
        form["language"] = language
    if isinstance(body.get("prompt"), str):
        form["prompt"] = body["prompt"]
    headers = {**auth_headers(target, {"authorization": f"Bearer {target.api_key}"}), **target.headers}
    url = with_query_key(target, openai_url(target, "audio/transcriptions"))
    raw = json_of(await exchange(client, "openai", "POST", url, timeout_=limit, headers=headers,
                                 data=form, files={"file": (audio.filename or "audio", audio.data,
                                                            content_type)}))
    return transcription.from_openai(raw, language)


async def _deepgram(client: httpx.AsyncClient, target: executor_pb2.Target,
                    audio: common_pb2.Attachment, content_type: str, language: str | None,
                    limit: httpx.Timeout) -> Json:
    headers = {"content-type": content_type,
               **auth_headers(target, {"authorization": f"Token {target.api_key}"}), **target.headers}
    raw = json_of(await exchange(client, "deepgram", "POST", f"{target.base_url}/v1/listen",
                                 timeout_=limit, headers=headers, content=audio.data,
                                 params=transcription.deepgram_query(target.model, language)))
    return transcription.from_deepgram(raw, language)


async def _assemblyai(client: httpx.AsyncClient, target: executor_pb2.Target,
                      audio: common_pb2.Attachment, language: str | None, limit: httpx.Timeout) -> Json:
    auth = {**auth_headers(target, {"authorization": target.api_key}), **target.headers}
    base = target.base_url
    uploaded = json_of(await exchange(client, "assemblyai", "POST", f"{base}/v2/upload", timeout_=limit,
                                      headers={**auth, "content-type": "application/octet-stream"},
                                      content=audio.data))
    submitted = json_of(await exchange(
        client, "assemblyai", "POST", f"{base}/v2/transcript", timeout_=limit, headers=auth,
        json=transcription.assemblyai_submit(str(uploaded.get("upload_url") or ""), target.model, language)))
    transcript_id = submitted.get("id")
    if not isinstance(transcript_id, str):
        raise refuse(502, "AssemblyAI did not return a transcript id.", code="upstream_bad_response")
    deadline = time.monotonic() + (limit.read or 600.0)
    status = submitted
    while status.get("status") not in ("completed", "error"):
        if time.monotonic() > deadline:
            raise OperationError(common_pb2.Error(
                status=504, type="upstream_error", code="upstream_timeout",
                message="AssemblyAI did not finish in time", retryable=True))
        await asyncio.sleep(POLL_INTERVAL_S)
        status = json_of(await exchange(client, "assemblyai", "GET", f"{base}/v2/transcript/{transcript_id}",
                                        timeout_=limit, headers=auth))
    if status.get("status") == "error":
        raise OperationError(common_pb2.Error(status=422, type="invalid_request_error",
                                              code="transcription_failed", retryable=False,
                                              message=f"AssemblyAI: {status.get('error') or 'failed'}"))
    return transcription.from_assemblyai(status)
