"""Embeddings and image generation, per wire format: OpenAI-shaped providers take the caller's
body as is (model renamed); Gemini and Ollama get it translated (omniroute.formats)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import orjson

from omniroute.formats import FormatError, embeddings, images
from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor.families.base import json_headers, openai_url, with_query_key
from omniroute_executor.operations.upstream import Json, exchange, json_of, refuse

_GEMINI_AUTH = "x-goog-api-key"


def _model_path(target: executor_pb2.Target) -> str:
    return quote(target.model.removeprefix("models/"), safe="/-._~")


def _usage_of(answer: Json) -> Json:
    usage = answer.get("usage")
    return usage if isinstance(usage, dict) else {}


def _headers(target: executor_pb2.Target, family: str) -> dict[str, str]:
    defaults = {"gemini": {_GEMINI_AUTH: target.api_key}}
    return json_headers(target, defaults.get(family, {"authorization": f"Bearer {target.api_key}"}))


async def embed(client: httpx.AsyncClient, target: executor_pb2.Target, body: Json,
                limit: httpx.Timeout) -> tuple[Json, common_pb2.Usage | None]:
    family = target.family
    headers = _headers(target, family)
    fmt = body.get("encoding_format")
    try:
        if family == "openai":
            sent = {**body, "model": target.model}
            url = with_query_key(target, openai_url(target, "embeddings"))
            answer = json_of(await exchange(client, family, "POST", url, timeout_=limit,
                                            content=orjson.dumps(sent), headers=headers))
        elif family == "gemini":
            texts = embeddings.inputs(body)
            url = with_query_key(target, f"{target.base_url}/models/{_model_path(target)}:batchEmbedContents")
            sent = embeddings.to_gemini_batch(body, target.model)
            raw = json_of(await exchange(client, family, "POST", url, timeout_=limit, headers=headers,
                                         content=orjson.dumps(sent)))
            answer = embeddings.from_gemini(raw, target.model, texts, fmt)
        elif family == "ollama":
            raw = json_of(await exchange(client, family, "POST", f"{target.base_url}/api/embed",
                                         timeout_=limit, headers=headers,
                                         content=orjson.dumps(embeddings.to_ollama(body, target.model))))
            answer = embeddings.from_ollama(raw, target.model, fmt)
        else:
            raise refuse(400, f"The provider {target.provider_id!r} does not serve embeddings.")
    except FormatError as exc:
        raise refuse(exc.status, exc.message, code="invalid_body") from exc
    usage = _usage_of(answer)
    return answer, common_pb2.Usage(input_tokens=int(usage.get("prompt_tokens") or 0))


async def generate_images(client: httpx.AsyncClient, target: executor_pb2.Target, body: Json,
                          limit: httpx.Timeout) -> tuple[Json, common_pb2.Usage | None]:
    family = target.family
    headers = _headers(target, family)
    if family == "openai":
        url = with_query_key(target, openai_url(target, "images/generations"))
        answer = json_of(await exchange(client, family, "POST", url, timeout_=limit, headers=headers,
                                        content=orjson.dumps({**body, "model": target.model})))
        usage = _usage_of(answer)
        return answer, _image_usage(answer, body, input_tokens=int(usage.get("input_tokens") or 0),
                                    output_tokens=int(usage.get("output_tokens") or 0))
    if family == "gemini":  # Imagen
        url = with_query_key(target, f"{target.base_url}/models/{_model_path(target)}:predict")
        raw = json_of(await exchange(client, family, "POST", url, timeout_=limit, headers=headers,
                                     content=orjson.dumps(images.to_imagen(body))))
        try:
            answer = images.from_imagen(raw, str(body.get("prompt") or ""))
            return answer, _image_usage(answer, body)
        except FormatError as exc:
            raise refuse(502, exc.message, code="upstream_bad_response") from exc
    raise refuse(400, f"The provider {target.provider_id!r} does not generate images.")


def _image_usage(answer: Json, body: Json, **tokens: int) -> common_pb2.Usage:
    """Images are priced per image by size and quality: how many came back, at the size and
    quality asked ("" = the provider's default)."""
    data = answer.get("data")
    return common_pb2.Usage(images=len(data) if isinstance(data, list) else 0,
                            image_size=str(body.get("size") or ""),
                            image_quality=str(body.get("quality") or ""), **tokens)

