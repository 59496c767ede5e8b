"""X-OmniRoute-Progress: a streamed request that asked for progress gets SSE comment lines while it
waits for the answer to start; SDKs ignore them and parse the answer as usual."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")


def test_progress_comments_precede_a_slow_answer(gateway: Gateway) -> None:
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {gateway.api_key}", "x-omniroute-progress": "true"},
                      json={"model": "myopenai/mock-slow-2500", "stream": True,
                            "messages": [{"role": "user", "content": "take your time"}]}) as response:
        assert response.headers["x-omniroute-progress"] == "enabled"
        lines = [line for line in response.iter_lines() if line]
    progress = [line for line in lines if line.startswith(": progress")]
    first_data = next(index for index, line in enumerate(lines) if line.startswith("data: "))
    assert len(progress) >= 2 and all(lines.index(p) < first_data for p in progress)
    assert lines[-1] == "data: [DONE]"


def test_sdk_parses_a_stream_with_progress_and_an_error_ends_it_cleanly(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0,
                           default_headers={"x-omniroute-progress": "true"})
    chunks = list(client.chat.completions.create(
        model="myopenai/mock-slow-1500", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello from mock")
    # An upstream error before the answer starts arrives inside the already-open stream.
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="myopenai/progress-err/mock-400", stream=True,
                                            messages=[{"role": "user", "content": "hi"}]))
