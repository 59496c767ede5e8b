"""The requests the real CLIs sent (tests/fixtures/cli, recorded by tests/e2e/test_cli_tools.py)
are accepted by their format and translate for every other provider: nothing in them is
refused, the user's prompt, the CLI's tools and the tool's result reach every upstream, and what
only the caller's own provider reads goes back only to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omniroute.formats import anthropic, gemini, openai_responses, registry
from omniroute.formats import canonical as c

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cli"
SOURCE = {"claude": anthropic, "codex": openai_responses, "gemini": gemini}
TARGETS = registry.MODULES  # every upstream format


def _recorded() -> list[tuple[str, str, int, dict[str, Any]]]:
    """(cli, file, request index, request) for every recorded request."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        for index, request in enumerate(data["requests"]):
            if request["method"] == "POST" and isinstance(request.get("body"), dict):
                out.append((data["cli"], path.name, index, request))
    return out


RECORDED = _recorded()


def test_the_fixtures_are_there() -> None:
    assert {cli for cli, *_ in RECORDED} == set(SOURCE)


def _canonical(cli: str, request: dict[str, Any]) -> dict[str, Any]:
    module = SOURCE[cli]
    if cli == "gemini":  # the model and the stream flag are in the URL
        model, _, action = request["path"].removeprefix("/v1beta/models/").rpartition(":")
        return module.request_to_canonical(request["body"], model=model,
                                           stream=action == "streamGenerateContent")
    result: dict[str, Any] = module.request_to_canonical(request["body"])
    return result


@pytest.mark.parametrize(("cli", "name", "index", "request_"), RECORDED,
                         ids=[f"{name}-{index}" for _, name, index, _ in RECORDED])
@pytest.mark.parametrize("target", list(TARGETS))
def test_recorded_request_translates(cli: str, name: str, index: int, request_: dict[str, Any],
                                     target: str) -> None:
    canonical = _canonical(cli, request_)
    assert canonical["messages"] and canonical.get("tools")
    body = TARGETS[target].canonical_to_request(canonical, "upstream-model")
    sent = json.dumps(body)
    # The tool's result (second request of a turn) reaches every upstream.
    results = [m for m in canonical["messages"] if m["role"] == "tool"]
    for result in results:
        text = result["content"] if isinstance(result["content"], str) else c.content_text(result["content"])
        assert json.dumps(text)[1:-1][:40] in sent
    if target != SOURCE[cli].FORMAT:
        assert "x_omniroute" not in sent
        for field in c.native_fields(canonical, SOURCE[cli].FORMAT):
            assert f'"{field}"' not in sent or field in ("metadata", "text", "generationConfig"), field


def test_claude_code_request_keeps_its_shape_for_anthropic() -> None:
    data = json.loads((FIXTURES / "claude-openai.json").read_text())
    body = data["requests"][-1]["body"]
    canonical = anthropic.request_to_canonical(body)
    assert [m["role"] for m in canonical["messages"]][:3] == ["system", "user", "system"]
    assert c.ext(canonical)["thinking_mode"] == "adaptive"
    assert c.ext(canonical)["include_thoughts"] is False
    assert canonical["reasoning_effort"] == "high"
    back = anthropic.canonical_to_request(canonical, "claude-x")
    assert [m["role"] for m in back["messages"]] == [m["role"] for m in body["messages"]]
    assert back["thinking"] == body["thinking"] and back["output_config"] == body["output_config"]
    assert back["context_management"] == body["context_management"]
    assert len(back["tools"]) == len(body["tools"])


def test_codex_namespace_tools_are_declared_one_by_one() -> None:
    data = json.loads((FIXTURES / "codex-openai.json").read_text())
    body = data["requests"][-1]["body"]
    canonical = openai_responses.request_to_canonical(body)
    names = [t["function"]["name"] for t in canonical["tools"]]
    inner = [t["name"] for t in body["tools"] if t["type"] == "namespace" for t in t["tools"]]
    assert inner and set(inner) <= set(names) and "exec_command" in names
    assert c.native_fields(canonical, "openai_responses")["client_metadata"] == body["client_metadata"]
