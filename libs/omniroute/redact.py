"""Masking secrets out of logged payloads (detailed request logging).

Pure functions over text: API keys (sk-…, AIza…, ghp_…, AKIA…, JWTs …), bearer / basic
credentials and Authorization-like header values, `key=…` / `token=…` assignments, JSON fields
named like secrets, long opaque tokens; long base64 data (images, audio) becomes a size note.
Replacements contain no quote or backslash, so redacted JSON stays JSON.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"
TRUNCATED = "…[truncated: {total} bytes in all]"

_SECRET_NAMES = (r"api[_-]?key|x-api-key|x-goog-api-key|authorization|proxy-authorization|"
                 r"access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|session[_-]?token|"
                 r"client[_-]?secret|secret[_-]?key|secret|password|passwd|private[_-]?key")

# data:<mime>;base64,<data> (images in chat content parts, audio …).
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,([A-Za-z0-9+/]+={0,2})")
# Bare base64 long enough to be binary data rather than words (JSON escapes "/" as "/" or "\/").
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])(?:[A-Za-z0-9+]|\\?/){256,}={0,2}")
# Well-known credential shapes.
_KEYS = re.compile(
    r"\b(?:"
    r"(sk|pk|rk)-[A-Za-z0-9_\-]{8,}"             # OpenAI, Anthropic (sk-ant-…), Stripe-like, OmniRoute
    r"|AIza[0-9A-Za-z_\-]{20,}"                  # Google
    r"|gh[pousr]_[A-Za-z0-9]{20,}"               # GitHub
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{16,}"                # GitLab
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"            # Slack
    r"|hf_[A-Za-z0-9]{20,}"                      # Hugging Face
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"                # AWS access key id
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
    r")")
# "Bearer <token>", "Basic <b64>" wherever they appear (headers echoed in text, curl lines …).
_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/\-]{8,}=*")
# JSON field or header named like a secret: "api_key": "…", x-api-key: …, Authorization: …
_JSON_FIELD = re.compile(rf'(?i)((?:\\?")(?:{_SECRET_NAMES})(?:\\?")\s*:\s*\\?")((?:[^"\\]|\\[^"])*)')
_HEADER = re.compile(rf"(?i)(?<![\w\"-])((?:{_SECRET_NAMES})\s*:[ \t]*)(?!\[REDACTED\]|\\?\")([^\s\"\\,}}]+)")
# key=value (query strings, env lines, config snippets): any name ending in key/token/secret/…
_ASSIGN = re.compile(r"(?i)\b([\w\-]*(?:key|token|secret|password|passwd|pwd))(\s*=\s*)(\\?[\"']?)"
                     r"(?!\[REDACTED\])([^\s&\"'\\<>,;}]{3,})")
# A long unbroken run of letters and digits that mixes both: an opaque credential.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z_]*[0-9])(?=[0-9_]*[A-Za-z])[A-Za-z0-9_]{40,}"
                     r"(?![A-Za-z0-9_])")


def _data_note(match: re.Match[str]) -> str:
    return f"data:{match.group(1)};base64,[{_decoded_size(match.group(2))} bytes of base64 data]"


def _base64_note(match: re.Match[str]) -> str:
    return f"[{_decoded_size(match.group(0).replace(chr(92), ''))} bytes of base64 data]"


def _decoded_size(data: str) -> int:
    return len(data) * 3 // 4 - data.count("=")


def _key_mask(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return f"{prefix}-{MASK}" if prefix else MASK


def redact(text: str) -> str:
    """`text` with every secret-looking value masked and long base64 data summarised."""
    text = _DATA_URL.sub(_data_note, text)
    text = _BASE64.sub(_base64_note, text)
    text = _KEYS.sub(_key_mask, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _JSON_FIELD.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", text)
    return _OPAQUE.sub(MASK, text)


def capped(text: str, limit: int) -> bytes:
    """UTF-8 of `text`, cut to at most `limit` bytes (marker included) when longer."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    marker = TRUNCATED.format(total=len(data)).encode()
    head = data[:max(0, limit - len(marker))].decode("utf-8", "ignore").encode()
    return head + marker


def redact_payload(data: bytes | str, limit: int) -> bytes:
    """What leaves the router: redacted first (a secret is never half cut), then capped."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return capped(redact(text), limit)
