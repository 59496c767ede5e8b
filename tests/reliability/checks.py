"""Assertions every reliability test shares: what a clean answer and a clean error look like."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import orjson

_LEAKS = (b"Traceback (most recent call last)", b'File "/', b"Internal Server Error")


@dataclass
class Outcome:
    status: int
    body: bytes
    elapsed_s: float
    headers: httpx.Headers

    @property
    def text(self) -> str:
        """The answer's text, whole or streamed (OpenAI chat)."""
        if self.body.startswith(b"data:") or b"\ndata:" in self.body:
            out = []
            for line in self.body.splitlines():
                if line.startswith(b"data: {"):
                    frame = orjson.loads(line[6:])
                    for choice in frame.get("choices") or []:
                        out.append((choice.get("delta") or {}).get("content") or "")
            return "".join(out)
        return str(orjson.loads(self.body)["choices"][0]["message"]["content"])

    @property
    def stream_error(self) -> dict[str, object] | None:
        """The error frame that ended an OpenAI stream, if any."""
        for line in self.body.splitlines():
            if line.startswith(b"data: {"):
                frame = orjson.loads(line[6:])
                if "error" in frame:
                    error: dict[str, object] = frame["error"]
                    return error
        return None


def chat(client: httpx.Client, key: str, model: str, *, stream: bool = False, content: str = "hi",
         timeout: float = 30.0, headers: dict[str, str] | None = None) -> Outcome:
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", timeout=timeout,
                       headers={"authorization": f"Bearer {key}", **(headers or {})},
                       json={"model": model, "stream": stream,
                             "messages": [{"role": "user", "content": content}]}) as response:
        body = response.read()
    return Outcome(response.status_code, body, time.monotonic() - started, response.headers)


def assert_no_leak(body: bytes) -> None:
    for marker in _LEAKS:
        assert marker not in body, f"{marker!r} in a response body: {body[:400]!r}"


def assert_clean_openai_error(outcome: Outcome, statuses: tuple[int, ...] = (502, 503, 504)) -> None:
    """An OpenAI error object, whole (before the answer started) or as the stream's last frame."""
    assert_no_leak(outcome.body)
    if outcome.status == 200:
        error = outcome.stream_error
        assert error is not None, f"a 200 answer without an error frame: {outcome.body[-300:]!r}"
        assert error.get("message"), error
        assert b"data: [DONE]" not in outcome.body  # a failed stream must not look complete
        return
    assert outcome.status in statuses, (outcome.status, outcome.body[:300])
    body = orjson.loads(outcome.body)
    assert isinstance(body.get("error"), dict) and body["error"].get("message"), body
