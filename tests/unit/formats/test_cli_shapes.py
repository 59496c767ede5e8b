"""What Codex (Responses) and Gemini CLI (generateContent) send, accepted by their formats and
translated for every other provider; what the translation cannot carry goes back only to an
upstream of the caller's own format."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from formats_fixtures import WEATHER_SCHEMA

from omniroute.formats import anthropic, gemini, ollama, openai_chat, openai_responses, registry
from omniroute.formats import canonical as c

OTHERS = {name: module for name, module in registry.MODULES.items() if module is not openai_responses}


def codex_request() -> dict[str, Any]:
    """The body Codex's Responses client builds: instructions, the whole history with every
    item type it keeps (reasoning with encrypted content, shell and custom tool calls, a web
    search it ran), function / custom / local_shell / web_search tools, store false, include,
    prompt_cache_key, reasoning effort and summary, text verbosity."""
    return {
        "model": "myanthropic/mock-text",
        "instructions": "You are Codex, a coding agent.",
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "<permissions>sandboxed</permissions>"}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "fix the bug"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look first."}],
             "content": None, "encrypted_content": "gAAAA-opaque"},
            {"type": "function_call", "id": "fc_1", "name": "shell", "call_id": "call_1",
             "arguments": json.dumps({"command": ["ls"]})},
            {"type": "function_call_output", "call_id": "call_1", "output": "main.py"},
            {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_2", "status": "completed",
             "action": {"type": "exec", "command": ["cat", "main.py"], "timeout_ms": 1000}},
            {"type": "function_call_output", "call_id": "call_2", "output": "print(1)"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_3", "name": "apply_patch",
             "input": "*** Begin Patch\n*** End Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done!"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed",
             "action": {"type": "search", "query": "python print"}},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Patched."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "Run a command.", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {"type": "array",
                                                                         "items": {"type": "string"}}}}},
            {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
            {"type": "local_shell"},
            {"type": "web_search"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "text": {"verbosity": "low"},
    }


def test_codex_request_is_accepted_and_keeps_its_history(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="omniroute.formats.openai_responses"):
        out = openai_responses.request_to_canonical(codex_request())
    messages = out["messages"]
    assert [m["role"] for m in messages] == [
        "system", "developer", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool",
        "assistant", "user"]
    calls = [m["tool_calls"][0] for m in messages if m.get("tool_calls")]
    assert [(t["id"], t["function"]["name"]) for t in calls] == [
        ("call_1", "shell"), ("call_2", "local_shell"), ("call_3", "apply_patch")]
    assert json.loads(calls[1]["function"]["arguments"])["command"] == ["cat", "main.py"]
    assert json.loads(calls[2]["function"]["arguments"]) == {"input": "*** Begin Patch\n*** End Patch"}
    assert messages[3]["reasoning_content"] == "Look first."
    assert messages[9]["content"] == "Patched."
    assert [m["tool_call_id"] for m in messages if m["role"] == "tool"] == ["call_1", "call_2", "call_3"]
    assert [t["function"]["name"] for t in out["tools"]] == ["shell", "apply_patch", "local_shell"]
    assert out["tools"][1]["function"]["parameters"]["required"] == ["input"]
    assert out["reasoning_effort"] == "medium" and out["parallel_tool_calls"] is False
    assert c.native_fields(out, "openai_responses") == {
        "store": False, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "0199-session",
        "text": {"verbosity": "low"}}
    assert "web_search_call" in caplog.text and "encrypted_content" in caplog.text
    assert "'web_search' tool" in caplog.text


@pytest.mark.parametrize("fmt", list(OTHERS))
def test_codex_request_translates_for_every_other_format(fmt: str) -> None:
    canonical = openai_responses.request_to_canonical(codex_request())
    body = OTHERS[fmt].canonical_to_request(canonical, "m")
    text = json.dumps(body)
    assert "fix the bug" in text and "apply_patch" in text and "print(1)" in text
    for field in ("prompt_cache_key", '"include"', "verbosity", "x_omniroute", "encrypted"):
        assert field not in text, field


def test_codex_fields_come_back_for_a_responses_upstream() -> None:
    canonical = openai_responses.request_to_canonical(codex_request())
    body = openai_responses.canonical_to_request(canonical, "gpt-x")
    assert body["store"] is False and body["prompt_cache_key"] == "0199-session"
    assert body["include"] == ["reasoning.encrypted_content"] and body["text"] == {"verbosity": "low"}


def gemini_cli_request() -> dict[str, Any]:
    """What Gemini CLI sends through google-genai: a system instruction, function declarations
    with parametersJsonSchema, a built-in tool, toolConfig, thinkingConfig with includeThoughts,
    a model turn with thought parts and signatures, and fields only Gemini reads."""
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "<session_context>cwd=/tmp</session_context>"},
                                       {"text": "read notes.txt"}]},
            {"role": "model", "parts": [
                {"text": "I should read it.", "thought": True},
                {"functionCall": {"name": "read_file", "args": {"absolute_path": "/tmp/notes.txt"}},
                 "thoughtSignature": "c2ln"}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "read_file", "response": {"output": "token-42"}}}]},
        ],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
        "tools": [{"functionDeclarations": [
            {"name": "read_file", "description": "Read a file.", "parametersJsonSchema": WEATHER_SCHEMA},
            {"name": "run_shell_command", "description": "Run a shell command.",
             "parametersJsonSchema": {"type": "object", "properties": {"command": {"type": "string"}}}}]},
            {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"temperature": 0, "topP": 1,
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192},
                             "responseModalities": ["TEXT"]},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
        "labels": {"team": "x"},
    }


def test_gemini_cli_request_is_accepted() -> None:
    out = gemini.request_to_canonical(gemini_cli_request(), model="myopenai/gpt-4o-mini", stream=True)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "tool"]
    assert out["messages"][2]["reasoning_content"] == "I should read it."
    assert out["messages"][3]["content"] == "token-42"
    assert [t["function"]["name"] for t in out["tools"]] == ["read_file", "run_shell_command"]
    assert out["tool_choice"] == "auto" and out["reasoning_effort"] == "medium"
    assert c.ext(out)["include_thoughts"] is True and c.ext(out)["thinking_budget"] == 8192
    assert c.native_fields(out, "gemini") == {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc", "labels": {"team": "x"},
        "generationConfig": {"responseModalities": ["TEXT"]}}


def test_gemini_cli_fields_come_back_only_for_gemini() -> None:
    canonical = gemini.request_to_canonical(gemini_cli_request(), model="m")
    back = gemini.canonical_to_request(canonical, "gemini-x")
    assert back["labels"] == {"team": "x"} and back["cachedContent"] == "cachedContents/abc"
    assert back["generationConfig"]["responseModalities"] == ["TEXT"]
    assert back["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    for module in (openai_chat, anthropic, openai_responses, ollama):
        text = json.dumps(module.canonical_to_request(canonical, "m"))
        assert "token-42" in text and "read_file" in text
        assert "labels" not in text and "cachedContent" not in text and "safetySettings" not in text


def test_snake_case_fields_are_native_under_their_camel_case_name() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "generation_config": {"temperature": 0.1, "response_modalities": ["TEXT"]},
            "cached_content": "cachedContents/1"}
    out = gemini.request_to_canonical(body, model="m")
    assert out["temperature"] == 0.1
    assert c.native_fields(out, "gemini") == {"cachedContent": "cachedContents/1",
                                              "generationConfig": {"responseModalities": ["TEXT"]}}
