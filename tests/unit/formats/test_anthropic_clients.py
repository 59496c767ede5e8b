"""What Anthropic's API and its current clients (Claude Code) send, accepted by the Anthropic
format: system messages inside `messages`, every thinking mode, fields and blocks the gateway
does not translate. Each shape is checked both ways: into canonical (what every other
provider gets) and back to Anthropic (what an Anthropic upstream gets)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from formats_fixtures import WEATHER_SCHEMA

from omniroute.formats import anthropic as a
from omniroute.formats import canonical as c
from omniroute.formats import gemini, ollama, openai_chat, openai_responses

anthropic_types = pytest.importorskip("anthropic.types")


def _tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool.", "input_schema": WEATHER_SCHEMA}


def claude_code_request(tools: int = 24) -> dict[str, Any]:
    """The shape Claude Code sends for a model it does not know: a big system prompt with
    cache_control, many tools, a system message inside `messages` right after the user's turn,
    adaptive thinking, context_management and output_config."""
    return {
        "model": "myopenai/gpt-4o-mini",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code. " * 400,
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "List the files."}]},
            {"role": "system", "content": [
                {"type": "text", "text": "Today is Thursday.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "tool_0", "input": {"city": "."}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
        ],
        "tools": [_tool(f"tool_{i}") for i in range(tools)],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015",
                                          "keep": {"type": "thinking_turns", "value": 2}}]},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": "user_abc"},
        "stream": True,
    }


def test_the_sdk_itself_types_a_system_message_inside_messages() -> None:
    # anthropic 2.x: MessageParam includes SystemMessageParam (role "system", text content).
    from pydantic import TypeAdapter

    adapter = TypeAdapter(anthropic_types.MessageParam)
    adapter.validate_python({"role": "system", "content": [{"type": "text", "text": "x"}]})


def test_system_message_inside_messages_becomes_a_canonical_system_message_at_its_position() -> None:
    out = a.request_to_canonical(claude_code_request())
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "system", "assistant", "tool"]
    mid = out["messages"][2]
    assert mid["content"] == [{"type": "text", "text": "Today is Thursday.",
                               "x_omniroute": {"cache_control": {"type": "ephemeral"}}}]
    assert mid["x_omniroute"] == {"mid_conversation": True}
    assert len(out["tools"]) == 24


def test_the_mid_conversation_system_message_goes_back_to_its_position_for_anthropic() -> None:
    body = claude_code_request()
    back = a.canonical_to_request(a.request_to_canonical(body), "claude-opus-4-8")
    assert [m["role"] for m in back["messages"]] == ["user", "system", "assistant", "user"]
    assert back["messages"][1]["content"] == [{"type": "text", "text": "Today is Thursday.",
                                               "cache_control": {"type": "ephemeral"}}]
    assert back["system"] == body["system"]
    # Untranslated top-level fields and the thinking mode come back as the caller sent them.
    assert back["context_management"] == body["context_management"]
    assert back["thinking"] == {"type": "adaptive"}
    assert back["output_config"] == {"effort": "medium"}
    assert back["tools"] == body["tools"]
    adapter = pytest.importorskip("pydantic").TypeAdapter(anthropic_types.MessageParam)
    for message in back["messages"]:
        adapter.validate_python(message)


def test_other_system_messages_join_the_top_level_system_for_anthropic() -> None:
    # An OpenAI client's system message in the middle: older Claude models refuse system
    # turns, so it joins the system prompt as before.
    canonical = {"model": "m", "messages": [
        {"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]}
    out = a.canonical_to_request(canonical, "claude-x")
    assert out["system"] == "Be brief."
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]


def test_other_providers_get_the_system_message_where_they_can_take_it() -> None:
    canonical = a.request_to_canonical(claude_code_request())
    # OpenAI chat: a system message at the same position, no extension left.
    chat = openai_chat.canonical_to_request(canonical, "gpt-4o-mini")
    assert [m["role"] for m in chat["messages"]][:3] == ["system", "user", "system"]
    assert "x_omniroute" not in str(chat) and "context_management" not in chat
    # Gemini has one system instruction: both system texts are in it.
    gem = gemini.canonical_to_request(canonical, "gemini-x")
    system_text = "".join(p["text"] for p in gem["systemInstruction"]["parts"])
    assert "You are Claude Code." in system_text and "Today is Thursday." in system_text
    assert "context_management" not in gem
    # Responses: instructions; Ollama: system messages in place.
    responses = openai_responses.canonical_to_request(canonical, "gpt-x")
    assert "Today is Thursday." in responses["instructions"]
    assert "context_management" not in responses
    olla = ollama.canonical_to_request(canonical, "llama")
    assert "Today is Thursday." in str([m for m in olla["messages"] if m["role"] == "system"])


def test_system_message_without_text_is_dropped_and_tool_additions_are_declared(
        caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"},
        # A per-turn effort statement (no text) and a mid-conversation tool change.
        {"role": "system", "content": [], "output_config": {"effort": "low"}},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "go on"},
        {"role": "system", "content": [
            {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": _tool("late")}},
            {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "early"}}]},
    ], "tools": [_tool("early")]}
    with caplog.at_level(logging.DEBUG, logger="omniroute.formats.anthropic"):
        out = a.request_to_canonical(body)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert [t["function"]["name"] for t in out["tools"]] == ["early", "late"]
    assert "tool_addition" in caplog.text and "tool_removal" in caplog.text


@pytest.mark.parametrize(("thinking", "output_config", "effort", "ext"), [
    ({"type": "enabled", "budget_tokens": 4000}, None, "medium", {"thinking_budget": 4000}),
    ({"type": "adaptive"}, None, None, {"thinking_mode": "adaptive"}),
    ({"type": "adaptive"}, {"effort": "high"}, "high",
     {"thinking_mode": "adaptive", "anthropic_effort": "high"}),
    ({"type": "adaptive", "display": "omitted"}, {"effort": "max"}, "high",
     {"thinking_mode": "adaptive", "include_thoughts": False, "anthropic_effort": "max"}),
    ({"type": "disabled"}, {"effort": "high"}, None,
     {"thinking_mode": "disabled", "anthropic_effort": "high"}),
    ({"type": "between_tools"}, None, None, {"thinking_mode": "between_tools"}),
    (None, {"effort": "low"}, "low", {"anthropic_effort": "low"}),
])
def test_thinking_modes(thinking: Any, output_config: Any, effort: str | None, ext: dict[str, Any]) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 8000, "messages": [{"role": "user", "content": "x"}]}
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    out = a.request_to_canonical(body)
    assert out.get("reasoning_effort") == effort
    assert c.ext(out) == ext
    # Back to Anthropic: the same thinking, and the same effort where Anthropic has the name.
    back = a.canonical_to_request(out, "claude-x")
    if thinking is None:
        assert "thinking" not in back
    else:
        assert back["thinking"] == thinking
    assert back.get("output_config") == output_config


def test_adaptive_thinking_relaxes_what_thinking_refuses() -> None:
    body = {"model": "m", "max_tokens": 100, "temperature": 0.2, "top_k": 5,
            "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "adaptive"},
            "tools": [_tool("t")], "tool_choice": {"type": "any"}}
    back = a.canonical_to_request(a.request_to_canonical(body), "claude-x")
    assert "temperature" not in back and "top_k" not in back
    assert back["tool_choice"] == {"type": "auto"}


def test_unknown_top_level_fields_travel_only_to_anthropic() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
            "context_management": {"edits": []}, "container": "c1", "service_tier": "auto",
            "speed": "fast", "some_future_field": {"a": 1}}
    canonical = a.request_to_canonical(body)
    assert c.native_fields(canonical, "anthropic") == {
        "context_management": {"edits": []}, "container": "c1", "service_tier": "auto",
        "speed": "fast", "some_future_field": {"a": 1}}
    assert c.native_fields(canonical, "gemini") == {}
    back = a.canonical_to_request(canonical, "claude-x")
    assert back["some_future_field"] == {"a": 1} and back["speed"] == "fast"
    chat = openai_chat.canonical_to_request(canonical, "gpt")
    assert not {"context_management", "container", "speed", "some_future_field"} & set(chat)


def test_blocks_only_anthropic_can_read_are_dropped_not_refused(caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "search the web"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {"type": "text", "text": "Found it."}]},
        {"role": "user", "content": [
            {"type": "container_upload", "file_id": "file_1"},
            {"type": "search_result", "source": "https://x.test", "title": "X",
             "content": [{"type": "text", "text": "x is y"}]},
            {"type": "text", "text": "thanks"}]},
    ]}
    with caplog.at_level(logging.DEBUG, logger="omniroute.formats.anthropic"):
        out = a.request_to_canonical(body)
    assert out["messages"][1] == {"role": "assistant", "content": "Found it."}
    assert out["messages"][2]["content"] == [{"type": "text", "text": "X\nx is y"},
                                             {"type": "text", "text": "thanks"}]
    assert "server_tool_use" in caplog.text and "container_upload" in caplog.text
