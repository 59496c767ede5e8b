"""A 404 for a path (a wrong base_url) is the connection's configuration error, distinct from the
provider's own "no such model" (omniroute_executor.upstream_errors)."""

from __future__ import annotations

import httpx
import pytest

from omniroute.formats import anthropic_stream, gemini_stream, ollama, openai_chat
from omniroute_executor.upstream_errors import classify_status

MODEL_MISSING = [
    (openai_chat, b'{"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",'
                  b' "type": "invalid_request_error", "code": "model_not_found"}}'),
    (anthropic_stream, b'{"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}}'),
    (gemini_stream, b'{"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta,'
                    b' or is not supported for generateContent.", "status": "NOT_FOUND"}}'),
    (ollama, b'{"error": "model \'llama9\' not found, try pulling it first"}'),
    # Azure names the deployment (its model) instead.
    (openai_chat, b'{"error": {"code": "DeploymentNotFound", "message": "The API deployment for this '
                  b'resource does not exist."}}'),
]
PATH_MISSING = [
    (openai_chat, b'{"error": {"message": "Invalid URL (POST /v1/v1/chat/completions)",'
                  b' "type": "invalid_request_error", "code": null}}'),
    (anthropic_stream, b'{"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}}'),
    (gemini_stream, b"<!DOCTYPE html><html><title>Error 404 (Not Found)!!1</title><p>The requested URL "
                    b"<code>/v1beta/v1beta/models/gemini-2.5-flash:generateContent</code> was not found.</html>"),
    (ollama, b"404 page not found"),
    (openai_chat, b'{"detail": "Not Found"}'),
]


@pytest.mark.parametrize(("module", "body"), MODEL_MISSING)
def test_the_providers_own_model_not_found(module: object, body: bytes) -> None:
    error_type, message = module.parse_error(404, body)  # type: ignore[attr-defined]
    error = classify_status(404, error_type, message, httpx.Headers(), body)
    assert error.code == "model_not_found" and error.retryable


@pytest.mark.parametrize(("module", "body"), PATH_MISSING)
def test_a_path_the_server_does_not_have(module: object, body: bytes) -> None:
    error_type, message = module.parse_error(404, body)  # type: ignore[attr-defined]
    error = classify_status(404, error_type, message, httpx.Headers(), body)
    assert error.code == "upstream_not_found" and error.retryable
    assert "check the connection's base_url" in error.message
