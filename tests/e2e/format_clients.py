"""One adapter per official SDK for the format matrix: each builds the request in its SDK's own
terms, reads the answer through the SDK (whole or streamed) and reports what the SDK understood
in one neutral shape (`Result`), so that every test asserts the same things for every client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import anthropic
import ollama
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

TIMEOUT_S = 20.0  # a hung stream fails the test instead of blocking the suite

TOOLS = [
    ("get_weather", "The weather in a city.",
     {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
      "required": ["city"]}),
    ("get_time", "The local time in a city.",
     {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
]


@dataclass(frozen=True)
class Call:
    id: str | None
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Ask:
    """A user turn."""
    text: str


@dataclass(frozen=True)
class ToolRound:
    """The assistant's tool calls, then their results (in order)."""
    calls: list[Call]
    results: list[str]


Turn = Ask | ToolRound


@dataclass
class Result:
    text: str = ""
    reasoning: str = ""
    calls: list[Call] = field(default_factory=list)
    stop: str = ""          # stop | tool_calls | length | content_filter
    input_tokens: int = 0
    output_tokens: int = 0  # reasoning included


class StreamFailed(Exception):
    """A stream ended with the format's error event that the SDK yields rather than raises."""


class FormatClient(Protocol):
    has_ids: bool

    def __init__(self, url: str, key: str, headers: dict[str, str] | None = None) -> None: ...

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result: ...

    def status_of(self, exc: BaseException) -> int | None: ...


def _function_tools() -> list[dict[str, Any]]:
    """TOOLS as OpenAI chat and Ollama declare them."""
    return [{"type": "function", "function": {"name": n, "description": d, "parameters": p}}
            for n, d, p in TOOLS]


def _stop(calls: list[Call], reason: str) -> str:
    return "tool_calls" if calls else reason


# --- openai: chat completions ------------------------------------------------------------------

class OpenAIChat:
    has_ids = True

    def __init__(self, url: str, key: str, headers: dict[str, str] | None = None) -> None:
        self.sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S,
                                 default_headers=headers)

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result:
        kwargs: dict[str, Any] = {"model": model, "messages": self._messages(turns)}
        if tools:
            kwargs["tools"] = _function_tools()
        if reasoning:
            kwargs["reasoning_effort"] = "low"
        if not stream:
            answer = self.sdk.chat.completions.create(**kwargs)
            message = answer.choices[0].message
            calls = [Call(c.id, c.function.name, json.loads(c.function.arguments))
                     for c in message.tool_calls or []]
            assert answer.usage is not None
            return Result(message.content or "", (message.model_extra or {}).get("reasoning_content") or "",
                          calls, answer.choices[0].finish_reason, answer.usage.prompt_tokens,
                          answer.usage.completion_tokens)
        result, parts = Result(), dict[int, dict[str, Any]]()
        for chunk in self.sdk.chat.completions.create(**kwargs, stream=True,
                                                      stream_options={"include_usage": True}):
            if chunk.usage is not None:
                result.input_tokens = chunk.usage.prompt_tokens
                result.output_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                delta = choice.delta
                result.text += delta.content or ""
                result.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
                for call in delta.tool_calls or []:
                    slot = parts.setdefault(call.index, {"id": None, "name": "", "args": ""})
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["args"] += call.function.arguments or ""
                result.stop = choice.finish_reason or result.stop
        result.calls = [Call(p["id"], p["name"], json.loads(p["args"])) for _, p in sorted(parts.items())]
        return result

    @staticmethod
    def _messages(turns: list[Turn]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for turn in turns:
            if isinstance(turn, Ask):
                messages.append({"role": "user", "content": turn.text})
                continue
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.args)}} for c in turn.calls]})
            messages.extend({"role": "tool", "tool_call_id": c.id, "content": r}
                            for c, r in zip(turn.calls, turn.results, strict=True))
        return messages

    def status_of(self, exc: BaseException) -> int | None:
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code
        if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
            return 0  # an error event inside the stream (the HTTP status was already 200)
        return None


# --- openai: responses -------------------------------------------------------------------------

class OpenAIResponses(OpenAIChat):
    has_ids = True

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result:
        kwargs: dict[str, Any] = {"model": model, "input": self._input(turns)}
        if tools:
            kwargs["tools"] = [{"type": "function", "name": n, "description": d, "parameters": p}
                               for n, d, p in TOOLS]
        if reasoning:
            kwargs["reasoning"] = {"effort": "low", "summary": "auto"}
        if not stream:
            return self._result(self.sdk.responses.create(**kwargs), "")
        final, deltas = None, ""
        for event in self.sdk.responses.create(**kwargs, stream=True):
            if event.type == "error":
                raise StreamFailed(event.message)
            if event.type == "response.output_text.delta":
                deltas += event.delta
            if event.type in ("response.completed", "response.incomplete"):
                final = event.response
        assert final is not None, "the stream ended without response.completed"
        return self._result(final, deltas)

    @staticmethod
    def _result(response: Any, streamed_text: str) -> Result:
        result = Result()
        for item in response.output:
            if item.type == "message":
                result.text += "".join(part.text for part in item.content if part.type == "output_text")
            elif item.type == "reasoning":
                result.reasoning += "".join(s.text for s in item.summary)
            elif item.type == "function_call":
                result.calls.append(Call(item.call_id, item.name, json.loads(item.arguments)))
        if streamed_text:
            assert streamed_text == result.text  # the deltas add up to the final text
        result.stop = _stop(result.calls, "length" if response.status == "incomplete" else "stop")
        result.input_tokens, result.output_tokens = response.usage.input_tokens, response.usage.output_tokens
        return result

    @staticmethod
    def _input(turns: list[Turn]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for turn in turns:
            if isinstance(turn, Ask):
                items.append({"role": "user", "content": turn.text})
                continue
            items.extend({"type": "function_call", "call_id": c.id, "name": c.name,
                          "arguments": json.dumps(c.args)} for c in turn.calls)
            items.extend({"type": "function_call_output", "call_id": c.id, "output": r}
                         for c, r in zip(turn.calls, turn.results, strict=True))
        return items


# --- anthropic ---------------------------------------------------------------------------------

_ANTHROPIC_STOP = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length",
                   "refusal": "content_filter", "stop_sequence": "stop"}


class Anthropic:
    has_ids = True

    def __init__(self, url: str, key: str, headers: dict[str, str] | None = None) -> None:
        self.sdk = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=TIMEOUT_S,
                                       default_headers=headers)

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 512, "messages": self._messages(turns)}
        if tools:
            kwargs["tools"] = [{"name": n, "description": d, "input_schema": p} for n, d, p in TOOLS]
        if reasoning:
            kwargs.update(max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
        if stream:
            with self.sdk.messages.stream(**kwargs) as events:
                for _ in events:
                    pass
                message = events.get_final_message()
        else:
            message = self.sdk.messages.create(**kwargs)
        result = Result(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens)
        for block in message.content:
            if block.type == "text":
                result.text += block.text
            elif block.type == "thinking":
                result.reasoning += block.thinking
            elif block.type == "tool_use":
                result.calls.append(Call(block.id, block.name, dict(block.input)))  # type: ignore[arg-type]
        result.stop = _ANTHROPIC_STOP.get(str(message.stop_reason), str(message.stop_reason))
        return result

    @staticmethod
    def _messages(turns: list[Turn]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for turn in turns:
            if isinstance(turn, Ask):
                messages.append({"role": "user", "content": turn.text})
                continue
            messages.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in turn.calls]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": c.id, "content": r}
                for c, r in zip(turn.calls, turn.results, strict=True)]})
        return messages

    def status_of(self, exc: BaseException) -> int | None:
        if isinstance(exc, anthropic.APIStatusError):
            return exc.status_code
        return None


# --- google-genai ------------------------------------------------------------------------------

class Gemini:
    has_ids = True

    def __init__(self, url: str, key: str, headers: dict[str, str] | None = None) -> None:
        self.sdk = genai.Client(api_key=key, http_options=gt.HttpOptions(
            base_url=url, api_version="v1beta", timeout=int(TIMEOUT_S * 1000), headers=headers))

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result:
        config = gt.GenerateContentConfig()
        if tools:
            config.tools = [gt.Tool(function_declarations=[
                gt.FunctionDeclaration(name=n, description=d, parameters_json_schema=p)
                for n, d, p in TOOLS])]
            config.automatic_function_calling = gt.AutomaticFunctionCallingConfig(disable=True)
        if reasoning:
            config.thinking_config = gt.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
        contents = self._contents(turns)
        if stream:
            frames = list(self.sdk.models.generate_content_stream(model=model, contents=contents,
                                                                  config=config))
        else:
            frames = [self.sdk.models.generate_content(model=model, contents=contents, config=config)]
        result, finish = Result(), ""
        for frame in frames:
            for candidate in frame.candidates or []:
                for part in (candidate.content.parts if candidate.content else None) or []:
                    if part.thought and part.text:
                        result.reasoning += part.text
                    elif part.text:
                        result.text += part.text
                    elif part.function_call is not None:
                        call = part.function_call
                        result.calls.append(Call(call.id, call.name or "", dict(call.args or {})))
                if candidate.finish_reason is not None:
                    finish = candidate.finish_reason.value
            if frame.usage_metadata is not None:
                usage = frame.usage_metadata
                result.input_tokens = usage.prompt_token_count or 0
                result.output_tokens = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
        result.stop = _stop(result.calls, {"STOP": "stop", "MAX_TOKENS": "length"}.get(finish, finish))
        return result

    @staticmethod
    def _contents(turns: list[Turn]) -> list[gt.Content]:
        contents: list[gt.Content] = []
        for turn in turns:
            if isinstance(turn, Ask):
                contents.append(gt.Content(role="user", parts=[gt.Part(text=turn.text)]))
                continue
            contents.append(gt.Content(role="model", parts=[
                gt.Part(function_call=gt.FunctionCall(id=c.id, name=c.name, args=c.args))
                for c in turn.calls]))
            contents.append(gt.Content(role="user", parts=[
                gt.Part(function_response=gt.FunctionResponse(id=c.id, name=c.name, response={"result": r}))
                for c, r in zip(turn.calls, turn.results, strict=True)]))
        return contents

    def status_of(self, exc: BaseException) -> int | None:
        if isinstance(exc, genai_errors.APIError):
            return exc.code
        return None


# --- ollama ------------------------------------------------------------------------------------

class Ollama:
    has_ids = False  # Ollama's tool calls have no ids: results are matched by tool name

    def __init__(self, url: str, key: str, headers: dict[str, str] | None = None) -> None:
        self.sdk = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}", **(headers or {})},
                                 timeout=TIMEOUT_S)

    def chat(self, model: str, turns: list[Turn], stream: bool, *, tools: bool = False,
             reasoning: bool = False) -> Result:
        kwargs: dict[str, Any] = {"model": model, "messages": self._messages(turns)}
        if tools:
            kwargs["tools"] = _function_tools()
        if reasoning:
            kwargs["think"] = True
        if stream:
            parts = list(self.sdk.chat(**kwargs, stream=True))
        else:
            parts = [self.sdk.chat(**kwargs, stream=False)]
        result = Result()
        for part in parts:
            result.text += part.message.content or ""
            result.reasoning += part.message.thinking or ""
            result.calls += [Call(None, c.function.name, dict(c.function.arguments))
                             for c in part.message.tool_calls or []]
            if part.done:
                result.stop = _stop(result.calls, part.done_reason or "stop")
                result.input_tokens, result.output_tokens = part.prompt_eval_count or 0, part.eval_count or 0
        return result

    @staticmethod
    def _messages(turns: list[Turn]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for turn in turns:
            if isinstance(turn, Ask):
                messages.append({"role": "user", "content": turn.text})
                continue
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": c.name, "arguments": c.args}} for c in turn.calls]})
            messages.extend({"role": "tool", "content": r, "tool_name": c.name}
                            for c, r in zip(turn.calls, turn.results, strict=True))
        return messages

    def status_of(self, exc: BaseException) -> int | None:
        if isinstance(exc, ollama.ResponseError):
            return exc.status_code
        return None


CLIENTS: dict[str, type[FormatClient]] = {
    "openai_chat": OpenAIChat, "openai_responses": OpenAIResponses, "anthropic": Anthropic,
    "gemini": Gemini, "ollama": Ollama,
}
