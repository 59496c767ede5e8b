"""Shared data for the format translator tests: canonical requests and answers rich
enough to exercise every field issue 3 lists."""

from __future__ import annotations

from typing import Any

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}},
                  "required": ["city"]}


def canonical_request() -> dict[str, Any]:
    """A multi-turn canonical request: system, images, parallel tool calls and results."""
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris and Rome? See picture."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C cloudy"},
            {"role": "user", "content": "Thanks. Which is warmer?"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city",
            "parameters": WEATHER_SCHEMA}}],
        "tool_choice": "auto",
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 300,
        "stop": ["END"],
    }


def canonical_response(*, reasoning: bool = True) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant", "content": "Rome is warmer.",
        "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
        ],
    }
    if reasoning:
        message["reasoning_content"] = "Compare 18 and 24."
        message["x_omniroute"] = {"reasoning_signature": "sig-123"}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
            "model": "m", "choices": [{"index": 0, "message": message,
                                       "finish_reason": "tool_calls", "logprobs": None}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                      "prompt_tokens_details": {"cached_tokens": 100},
                      "completion_tokens_details": {"reasoning_tokens": 12}}}
