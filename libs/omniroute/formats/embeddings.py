"""Embeddings: the OpenAI `/v1/embeddings` shape (the hub) to and from Gemini
(`batchEmbedContents`) and Ollama (`/api/embed`). Pure, no I/O.

Gemini and Ollama return plain float vectors; a caller that asked OpenAI's
`encoding_format: "base64"` gets the little-endian float32 bytes, base64-encoded, as OpenAI
answers."""

from __future__ import annotations

import base64
import struct
from typing import Any

from omniroute.formats.errors import FormatError

Json = dict[str, Any]


def inputs(body: Json) -> list[str]:
    """The texts of an OpenAI embeddings request (token arrays are refused: only OpenAI-compatible
    providers understand them, and those get the body as is)."""
    raw = body.get("input")
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise FormatError("'input' must be a string or an array of strings.", param="input")
    if not items:
        raise FormatError("'input' must not be empty.", param="input")
    if not all(isinstance(item, str) for item in items):
        raise FormatError("This provider takes text inputs only, not token arrays.", param="input")
    return list(items)


def validate_request(body: object) -> Json:
    """Refuse what no provider would take, with a 400 that says why."""
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise FormatError("'model' is required.", param="model")
    raw = body.get("input")
    if raw is None or raw == "" or raw == []:
        raise FormatError("'input' is required.", param="input")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise FormatError("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return body


def _encode(vector: list[float], encoding_format: object) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def openai_list(vectors: list[list[float]], model: str, prompt_tokens: int,
                encoding_format: object = None) -> Json:
    return {"object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": _encode(v, encoding_format)}
                     for i, v in enumerate(vectors)],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


# --- Gemini -------------------------------------------------------------------------------

def to_gemini_batch(body: Json, model: str) -> Json:
    """OpenAI request → `models/{model}:batchEmbedContents` body (one request per input)."""
    name = model if model.startswith("models/") else f"models/{model}"
    requests = []
    for text in inputs(body):
        request: Json = {"model": name, "content": {"parts": [{"text": text}]}}
        if isinstance(body.get("dimensions"), int):
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    return {"requests": requests}


def from_gemini(answer: Json, model: str, texts: list[str], encoding_format: object = None) -> Json:
    """`batchEmbedContents` ({"embeddings": [{"values"}]}) or `embedContent` ({"embedding"})
    answer → OpenAI list. Gemini reports no token usage here: estimated from words."""
    items = answer.get("embeddings")
    if items is None and isinstance(answer.get("embedding"), dict):
        items = [answer["embedding"]]
    if not isinstance(items, list):
        raise FormatError("the Gemini answer has no embeddings", status=502)
    vectors = [[float(x) for x in (item or {}).get("values") or []] for item in items]
    return openai_list(vectors, model, sum(len(t.split()) for t in texts), encoding_format)


# --- Ollama -------------------------------------------------------------------------------

def to_ollama(body: Json, model: str) -> Json:
    texts = inputs(body)
    request: Json = {"model": model, "input": texts[0] if len(texts) == 1 else texts}
    if isinstance(body.get("dimensions"), int):
        request["dimensions"] = body["dimensions"]
    return request


def from_ollama(answer: Json, model: str, encoding_format: object = None) -> Json:
    vectors = answer.get("embeddings")
    if not isinstance(vectors, list):
        raise FormatError("the Ollama answer has no embeddings", status=502)
    tokens = answer.get("prompt_eval_count")
    return openai_list([[float(x) for x in v] for v in vectors], model,
                       tokens if isinstance(tokens, int) else 0, encoding_format)
