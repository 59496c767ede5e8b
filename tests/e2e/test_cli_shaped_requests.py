"""Requests shaped as the coding CLIs send them, through the running stack to every upstream
family, streaming and not, with the official SDKs:

- Claude Code (anthropic SDK): a system message inside `messages`, adaptive thinking,
  output_config, context_management (extra_body), an `anthropic-beta` header (extra_headers),
  24 tools and a large system prompt;
- Codex (openai SDK, Responses): instructions, the whole history with reasoning (encrypted),
  shell / custom tool calls and a web search, function / custom / local_shell / web_search
  tools, store false, include, prompt_cache_key, reasoning summary, text verbosity;
- Gemini CLI (google-genai): system instruction, function declarations with JSON schemas,
  a built-in tool, toolConfig, thinkingConfig with includeThoughts, safety settings.

Each answers with the mock's scripted text, names the model the client asked for in the
streamed and the whole answer alike, and reaches the upstream as that family expects it (the
caller's untranslated fields and beta header only to an upstream of the caller's format).

And a request the edge refuses (a bad body with a valid key) is visible: a request-log row with
status, error class and reason, and a line in the edge's log."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gt

from tests.mocks.server import MockServer
from tests.support import Gateway, wait_for

pytestmark = pytest.mark.xdist_group("gateway")

UPSTREAMS = {"myopenai": "openai", "myresponses": "openai-responses", "myanthropic": "anthropic",
             "mygemini": "gemini", "myollama": "ollama"}
TIMEOUT_S = 30.0
BETA = "context-management-2025-06-27,mid-conversation-system-2026-04-07"
BIG_SYSTEM = "You are Claude Code, a coding agent. Follow the repository's conventions. " * 300
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

upstreams = pytest.mark.parametrize("provider", list(UPSTREAMS))
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def _reply(provider: str) -> str:
    return f"Hello from mock {UPSTREAMS[provider]}! This is a scripted reply."


def _model(provider: str, client: str, stream: bool) -> str:
    """A model of this cell only (the mock reads the last segment): a cooldown one cell causes
    must not reach its neighbours."""
    return f"{provider}/{client}-{'stream' if stream else 'whole'}/mock-text"


# --- Claude Code -----------------------------------------------------------------------------

def _claude_code_request(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 32000,
        "system": [{"type": "text", "text": BIG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
            {"role": "system", "content": [{"type": "text", "text": "The user's shell is bash.",
                                            "cache_control": {"type": "ephemeral"}}]},
        ],
        "tools": [{"name": f"Tool{i}", "description": f"Tool number {i}.", "input_schema": SCHEMA}
                  for i in range(24)],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": "user_e2e"},
    }


@upstreams
@streaming
def test_claude_code_shaped_request(gateway: Gateway, mock_upstream: MockServer, provider: str,
                                    stream: bool) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.api_key, max_retries=0,
                                 timeout=TIMEOUT_S)
    model = _model(provider, "claude", stream)
    request: Any = _claude_code_request(model)
    extra: Any = {"extra_body": {"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}},
                  "extra_headers": {"anthropic-beta": BETA}}
    if stream:
        with client.messages.stream(**request, **extra) as events:
            started = [e.message.model for e in events if e.type == "message_start"]
            message = events.get_final_message()
        assert started == [model]
    else:
        message = client.messages.create(**request, **extra)
    assert "".join(b.text for b in message.content if b.type == "text") == _reply(provider)
    assert message.model == model  # whole or streamed: the name the client asked for

    family = UPSTREAMS[provider]
    sent = mock_upstream.last(family=family)
    text = sent.raw_body.decode()
    assert "The user's shell is bash." in text and "Tool23" in text and "Follow the repository" in text
    if family == "anthropic":  # passthrough: the body as sent, with its beta header
        assert sent.headers.get("anthropic-beta") == BETA
        assert [m["role"] for m in sent.body["messages"]] == ["user", "system"]
        assert sent.body["context_management"] and sent.body["thinking"] == {"type": "adaptive"}
    else:
        assert "anthropic-beta" not in sent.headers
        assert "context_management" not in text and "x_omniroute" not in text


# --- Codex -----------------------------------------------------------------------------------

def _codex_input() -> list[Any]:
    return [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "<permissions>workspace-write</permissions>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "List first."}],
         "encrypted_content": "gAAAA-opaque"},
        {"type": "function_call", "name": "shell", "call_id": "call_1",
         "arguments": json.dumps({"command": ["ls"]})},
        {"type": "function_call_output", "call_id": "call_1", "output": "notes.txt"},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch",
         "input": "*** Begin Patch\n*** End Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done!"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "notes"}},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
    ]


_CODEX_TOOLS: Any = [
    {"type": "function", "name": "shell", "description": "Run a command.", "strict": False,
     "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch."},
    {"type": "local_shell"},
    {"type": "web_search"},
]


@upstreams
@streaming
def test_codex_shaped_request(gateway: Gateway, mock_upstream: MockServer, provider: str, stream: bool) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0,
                           timeout=TIMEOUT_S)
    model = _model(provider, "codex", stream)
    request: Any = {
        "model": model, "instructions": "You are Codex.", "input": _codex_input(), "tools": _CODEX_TOOLS,
        "tool_choice": "auto", "parallel_tool_calls": False, "store": False,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-e2e",
        "reasoning": {"effort": "medium", "summary": "auto"}, "text": {"verbosity": "low"}}
    if stream:
        named: list[str] = []
        text = ""
        for event in client.responses.create(**request, stream=True):
            if event.type in ("response.created", "response.completed"):
                named.append(event.response.model)
            if event.type == "response.output_text.delta":
                text += event.delta
        assert named == [model, model]
    else:
        response = client.responses.create(**request)
        text = response.output_text
        assert response.model == model
    assert text == _reply(provider)

    family = UPSTREAMS[provider]
    sent = mock_upstream.last(family=family)
    raw = sent.raw_body.decode()
    assert "notes.txt" in raw and "apply_patch" in raw and "Done!" in raw
    if family == "openai-responses":
        assert sent.body["prompt_cache_key"] == "session-e2e" and sent.body["store"] is False
    else:
        assert "prompt_cache_key" not in raw and "encrypted" not in raw and "x_omniroute" not in raw


# --- Gemini CLI ------------------------------------------------------------------------------

def _gemini_config() -> gt.GenerateContentConfig:
    return gt.GenerateContentConfig(
        system_instruction="You are Gemini CLI, a coding agent.",
        tools=[gt.Tool(function_declarations=[
            gt.FunctionDeclaration(name="read_file", description="Read a file.", parameters_json_schema=SCHEMA),
            gt.FunctionDeclaration(name="run_shell_command", description="Run a command.",
                                   parameters_json_schema={"type": "object",
                                                           "properties": {"command": {"type": "string"}}})]),
            gt.Tool(google_search=gt.GoogleSearch())],
        tool_config=gt.ToolConfig(function_calling_config=gt.FunctionCallingConfig(mode=gt.FunctionCallingConfigMode.AUTO)),
        thinking_config=gt.ThinkingConfig(include_thoughts=True, thinking_budget=8192),
        temperature=0, top_p=1,
        safety_settings=[gt.SafetySetting(category=gt.HarmCategory.HARM_CATEGORY_HARASSMENT,
                                          threshold=gt.HarmBlockThreshold.BLOCK_NONE)])


def _gemini_contents() -> list[gt.Content]:
    return [
        gt.Content(role="user", parts=[gt.Part(text="<session_context>cwd=/tmp</session_context>"),
                                       gt.Part(text="read notes.txt")]),
        gt.Content(role="model", parts=[gt.Part(function_call=gt.FunctionCall(
            name="read_file", args={"path": "/tmp/notes.txt"}), thought_signature=b"sig")]),
        gt.Content(role="user", parts=[gt.Part(function_response=gt.FunctionResponse(
            name="read_file", response={"output": "token-42"}))]),
        gt.Content(role="user", parts=[gt.Part(text="hello there")]),
    ]


@upstreams
@streaming
def test_gemini_cli_shaped_request(gateway: Gateway, mock_upstream: MockServer, provider: str,
                                   stream: bool) -> None:
    client = genai.Client(api_key=gateway.api_key, http_options=gt.HttpOptions(
        base_url=gateway.url, api_version="v1beta", timeout=int(TIMEOUT_S * 1000)))
    model = _model(provider, "gemini", stream)
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=_gemini_contents(),
                                                            config=_gemini_config()))
        text = "".join(part.text or "" for chunk in chunks for candidate in chunk.candidates or []
                       for part in (candidate.content.parts if candidate.content else None) or []
                       if not part.thought)
        assert {chunk.model_version for chunk in chunks} == {model}
    else:
        answer = client.models.generate_content(model=model, contents=_gemini_contents(), config=_gemini_config())
        text = answer.text or ""
        assert answer.model_version == model
    assert text == _reply(provider)

    family = UPSTREAMS[provider]
    sent = mock_upstream.last(family=family)
    raw = sent.raw_body.decode()
    assert "token-42" in raw and "run_shell_command" in raw and "Gemini CLI" in raw
    if family == "gemini":
        assert sent.body["safetySettings"] and any("googleSearch" in tool for tool in sent.body["tools"])
    else:
        assert "safetySettings" not in raw and "googleSearch" not in raw and "x_omniroute" not in raw


# --- refused requests are visible ------------------------------------------------------------

def test_a_refused_request_is_in_the_request_logs_and_the_edge_log(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.api_key, max_retries=0,
                                 timeout=TIMEOUT_S)
    bad: Any = [{"role": "tool", "content": "not an Anthropic role"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="myanthropic/refused-e2e", max_tokens=10, messages=bad)
    request_id = info.value.response.headers["x-omniroute-request-id"]
    assert "messages.0.role" in info.value.message

    row = gateway.usage_row(request_id)
    assert row["status"] == 400 and row["error_class"] == "invalid_request_error"
    assert row["requested_model"] == "myanthropic/refused-e2e" and row["key_id"]
    assert "messages.0.role" in row["error_message"]
    admin = gateway.admin_client()
    try:
        listed = admin.get("/api/usage/request-logs", params={"requestId": request_id})
    finally:
        admin.close()
    assert listed.status_code == 200, listed.text
    [logged] = listed.json()["requests"]
    assert logged["status"] == 400 and logged["errorClass"] == "invalid_request_error"
    assert "messages.0.role" in logged["errorMessage"]
    assert "requestPayload" not in logged or not logged["requestPayload"]  # detailed logging is off

    edge_log = gateway.log_dir / "edge.log"
    line = wait_for(lambda: next((ln for ln in edge_log.read_text().splitlines() if request_id in ln), None))
    assert "refused POST /v1/messages: 400 invalid_request_error" in line and "messages.0.role" in line


def test_an_unauthenticated_request_is_in_the_edge_log_only(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-omni-not-a-key-e2e", max_retries=0,
                                 timeout=TIMEOUT_S)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="myanthropic/unauth-e2e", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    edge_log = gateway.log_dir / "edge.log"
    wait_for(lambda: "refused POST /v1/messages: 401 invalid_api_key" in edge_log.read_text())
    assert gateway.rows("SELECT 1 FROM usage WHERE requested_model = 'myanthropic/unauth-e2e'") == []
