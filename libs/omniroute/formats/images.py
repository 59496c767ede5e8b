"""Image generation: the OpenAI `/v1/images/generations` shape (the hub) to and from Google's
Imagen `:predict`. OpenAI-compatible providers (xAI, Together, Fireworks, Nebius) take the
OpenAI body as is. Pure, no I/O."""

from __future__ import annotations

import time
from typing import Any

from omniroute.formats.errors import FormatError

Json = dict[str, Any]
# OpenAI sizes → Imagen aspect ratios (Imagen has no pixel sizes).
_ASPECTS = {"1024x1024": "1:1", "1792x1024": "16:9", "1024x1792": "9:16", "1536x1024": "3:2",
            "1024x1536": "2:3", "512x512": "1:1", "256x256": "1:1"}


def validate_request(body: object) -> Json:
    if not isinstance(body, dict):
        raise FormatError("The request body must be a JSON object.")
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise FormatError("'prompt' is required.", param="prompt")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise FormatError("'model' is required.", param="model")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise FormatError("'n' must be an integer from 1 to 10.", param="n")
    return body


def to_imagen(body: Json) -> Json:
    parameters: Json = {"sampleCount": int(body.get("n") or 1)}
    aspect = _ASPECTS.get(str(body.get("size") or ""))
    if aspect:
        parameters["aspectRatio"] = aspect
    return {"instances": [{"prompt": body["prompt"]}], "parameters": parameters}


def from_imagen(answer: Json, prompt: str) -> Json:
    """Imagen answers base64 bytes only; they are given as OpenAI's `b64_json`."""
    predictions = answer.get("predictions")
    if not isinstance(predictions, list):
        raise FormatError("the Imagen answer has no predictions", status=502)
    data = [{"b64_json": p.get("bytesBase64Encoded", ""), "revised_prompt": prompt}
            for p in predictions if isinstance(p, dict)]
    return {"created": int(time.time()), "data": data}
