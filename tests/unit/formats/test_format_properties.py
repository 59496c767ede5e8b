"""Property tests: a canonical request sent through any format and back keeps its meaning."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniroute.formats import canonical as c
from omniroute.formats import registry

TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ÄÖé.,!?0123456789", min_size=1,
               max_size=24).filter(lambda s: s.strip() == s and s != "")
NAMES = st.sampled_from(["get_weather", "lookup", "calc"])
ARGS = st.dictionaries(st.sampled_from(["a", "city", "n"]),
                       st.one_of(st.integers(-5, 5), TEXT), max_size=2)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    call_no = 0
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(TEXT)})
        if draw(st.booleans()):
            calls = []
            for _ in range(draw(st.integers(1, 2))):
                call_no += 1
                calls.append({"id": f"call_{call_no}", "type": "function",
                              "function": {"name": draw(NAMES),
                                           "arguments": json.dumps(draw(ARGS))}})
            text = draw(st.one_of(st.none(), TEXT))
            messages.append({"role": "assistant", "content": text, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(TEXT)})
        else:
            messages.append({"role": "assistant", "content": draw(TEXT)})
    messages.append({"role": "user", "content": draw(TEXT)})
    body: dict[str, Any] = {"model": "m", "messages": messages,
                            "tools": [{"type": "function", "function": {
                                "name": n, "parameters": {"type": "object"}}}
                                for n in ["get_weather", "lookup", "calc"]]}
    if draw(st.booleans()):
        body["temperature"] = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    if draw(st.booleans()):
        body["top_p"] = draw(st.sampled_from([0.5, 0.9, 1.0]))
    if draw(st.booleans()):
        body["max_tokens"] = draw(st.integers(1, 4000))
    if draw(st.booleans()):
        body["stop"] = draw(st.lists(TEXT, min_size=1, max_size=2))
    return body


def meaning(canonical: dict[str, Any], *, exact_ids: bool) -> dict[str, Any]:
    """What must survive: system text, each turn's role/text, tool calls (name, parsed args),
    which result answers which call, and the sampling parameters."""
    system, rest = c.split_system(canonical["messages"])
    ids: dict[str, str] = {}

    def ref(call_id: str) -> str:
        return call_id if exact_ids else ids.setdefault(call_id, f"#{len(ids)}")

    turns = []
    for message in rest:
        calls = [(ref(t["id"]), t["function"]["name"], json.loads(t["function"]["arguments"]))
                 for t in message.get("tool_calls") or []]
        answer = ref(message["tool_call_id"]) if message["role"] == "tool" else None
        turns.append((message["role"], c.content_text(message.get("content")), calls, answer))
    return {"system": " ".join(p["text"] for p in system), "turns": turns,
            "temperature": canonical.get("temperature"), "top_p": canonical.get("top_p"),
            "max_tokens": c.max_output_tokens(canonical), "stop": c.stop_list(canonical)}


@pytest.mark.parametrize("fmt", sorted(registry.MODULES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=conversations())
def test_request_round_trip_keeps_meaning(fmt: str, body: dict[str, Any]) -> None:
    module = registry.module_for(fmt)
    native = module.canonical_to_request(body, "m")
    json.dumps(native)  # always serializable
    back = module.request_to_canonical(native, model="m")
    exact_ids = fmt not in ("gemini", "ollama")  # those formats have no call ids on the wire
    expected, got = meaning(body, exact_ids=exact_ids), meaning(back, exact_ids=exact_ids)
    if expected["max_tokens"] is None and fmt == "anthropic":
        assert got.pop("max_tokens") == 4096  # Anthropic requires one: the documented default
        expected.pop("max_tokens")
    if fmt == "openai_responses":
        expected["stop"] = None  # the Responses API has no stop sequences
    assert got == expected


@pytest.mark.parametrize("fmt", sorted(registry.MODULES))
@settings(max_examples=40, deadline=None)
@given(text=TEXT, reasoning=st.one_of(st.none(), TEXT), n_calls=st.integers(0, 3),
       finish=st.sampled_from(["stop", "length"]), prompt=st.integers(0, 10_000),
       completion=st.integers(0, 5_000))
def test_stream_encode_decode_round_trip(fmt: str, text: str, reasoning: str | None,
                                         n_calls: int, finish: str, prompt: int,
                                         completion: int) -> None:
    """Canonical answer → format X stream → canonical again: text, reasoning, calls, finish
    reason and usage all survive."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": "f", "arguments": json.dumps({"i": i})}} for i in range(n_calls)]
    if calls:
        message["tool_calls"] = calls
        finish = "tool_calls"
    response = c.response(id_="x", model="m", created=1, message=message, finish_reason=finish,
                          usage=c.Usage(prompt=prompt, completion=completion))
    module = registry.module_for(fmt)
    encoder = module.StreamEncoder(model="m", request_id="r1")
    events = [e for ch in c.response_to_chunks(response) for e in encoder.encode(ch)]
    events += encoder.finish()
    decoder = module.StreamDecoder()
    acc = c.StreamAccumulator()
    for name, data in events:
        for chunk in decoder.feed(name, json.loads(json.dumps(data))):
            acc.add(chunk)
    for chunk in decoder.finish():
        acc.add(chunk)
    out = acc.result()
    got = out["choices"][0]
    assert got["message"]["content"] == text
    assert got["message"].get("reasoning_content") == reasoning
    assert [json.loads(t["function"]["arguments"]) for t in got["message"].get("tool_calls", [])] \
        == [{"i": i} for i in range(n_calls)]
    assert got["finish_reason"] == finish
    assert out["usage"]["prompt_tokens"] == prompt
    assert out["usage"]["completion_tokens"] == completion
