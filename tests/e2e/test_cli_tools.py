"""The real coding CLIs — Claude Code, Codex and Gemini CLI, pinned in tests/cli/package-lock.json
— run headless against the running stack, with the config files that the admin's CLI-tools API
writes (into the temporary HOME the admin is given), for every upstream family.

Each run asks for `<provider>/mock-agent`: the mock answers the first turn with a call to the
CLI's own tool (Bash, exec_command, read_file) that shows a file holding a random token, and,
once the tool's result comes back, with "The check file says <token>." So a passing cell means:
the CLI authenticated with the written key, the gateway translated its request (tools included)
into the family's format and the answer back, the tool really ran on this machine, its result
went upstream, and the final text came back to the CLI.

Every request a CLI sends passes through a recording proxy; with OMNIROUTE_RECORD_CLI=1 they are
written to tests/fixtures/cli/<cli>-<family>.json (see the README there).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.cli import harness
from tests.mocks.common import AGENT_DONE, AGENT_FILE
from tests.mocks.server import MockServer, start_mock_server
from tests.support import Gateway, running_gateway

pytestmark = pytest.mark.xdist_group("cli-tools")   # one worker: the CLIs are heavy on 2 cores

API_KEY = "sk-omni-cli-e2e-0123456789abcdef"
RUN_TIMEOUT_S = 150
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli"
#: family → the provider serving it (each on the mock, as in tests/e2e/conftest.py).
PROVIDERS = {"anthropic": ("myanthropic", "anthropic", "/v1"), "openai": ("myopenai", "openai", "/v1"),
             "responses": ("myresponses", "openai-responses", "/v1"),
             "gemini": ("mygemini", "gemini", "/v1beta"), "ollama": ("myollama", "ollama", "")}
FAMILIES = list(PROVIDERS)


@dataclass
class CliStack:
    gateway: Gateway
    mock: MockServer
    proxy: harness.RecordingProxy
    home: Path
    bin: Path
    admin: httpx.Client


@pytest.fixture(scope="module")
def cli_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    bin_dir = harness.ensure_installed()
    home = tmp_path_factory.mktemp("cli-home")
    with start_mock_server() as mock:
        config = {
            "providers": [{"id": provider, "type": type_, "base_url": f"{mock.url}{path}",
                           "models": ["mock-agent"], "connections": [{"name": "primary", "api_key": "up-key-1"}]}
                          for provider, type_, path in PROVIDERS.values()],
            "keys": [{"name": "cli", "key": API_KEY}],
        }
        # The admin writes the CLIs' configs under OMNIROUTE_CLI_HOME (features/cli_tools.home).
        with running_gateway(tmp_path_factory.mktemp("cli-stack"), config, api_key=API_KEY,
                             extra_env={"OMNIROUTE_CLI_HOME": str(home)}) as gateway, \
                harness.recording_proxy(gateway.url) as proxy, contextlib.closing(gateway.admin_client()) as admin:
            yield CliStack(gateway, mock, proxy, home, bin_dir, admin)


def _version(stack: CliStack, cli: str) -> str:
    done = harness.run_cli([str(stack.bin / cli), "--version"], env=harness.base_env(stack.home),
                           cwd=stack.home, timeout=60)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else "?"


def _write_config(stack: CliStack, tool: str, model: str) -> dict[str, object]:
    """What the dashboard's CLI-tools page does: the admin writes the tool's config, pointed at the
    recording proxy in front of the gateway (the page's "Gateway URL" field)."""
    answer = stack.admin.post(f"/api/cli-tools/{tool}-settings",
                              json={"apiKey": API_KEY, "model": model, "baseUrl": stack.proxy.url})
    assert answer.status_code == 200, answer.text
    written: dict[str, object] = answer.json()
    assert Path(str(written["written"])).is_relative_to(stack.home)
    return written


def _claude(stack: CliStack, work: Path) -> harness.Run:
    env = {**harness.base_env(stack.home), "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    # Base URL, key and model come from ~/.claude/settings.json as the admin wrote it.
    argv = [str(stack.bin / "claude"), "-p", f"Show me what {AGENT_FILE} says.", "--output-format", "json",
            "--allowedTools", "Bash(cat:*)"]
    return harness.run_cli(argv, env=env, cwd=work, timeout=RUN_TIMEOUT_S)


def _codex(stack: CliStack, work: Path) -> harness.Run:
    # Base URL, provider and model come from ~/.codex/config.toml as the admin wrote it; Codex reads
    # the key from the variable the config names (the admin's answer says which).
    env = {**harness.base_env(stack.home), "OMNIROUTE_API_KEY": API_KEY}
    argv = [str(stack.bin / "codex"), "exec", "--skip-git-repo-check", "-c", "analytics.enabled=false",
            "-c", "check_for_update_on_startup=false", f"Show me what {AGENT_FILE} says."]
    return harness.run_cli(argv, env=env, cwd=work, timeout=RUN_TIMEOUT_S)


def _gemini(stack: CliStack, work: Path) -> harness.Run:
    # Key, base URL and model come from ~/.gemini/.env, the auth type from ~/.gemini/settings.json,
    # both as the admin wrote them; telemetry and updates are off in the system settings file.
    env = {**harness.base_env(stack.home), "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(harness.GEMINI_SYSTEM_SETTINGS),
           "GEMINI_CLI_NO_RELAUNCH": "true"}
    argv = [str(stack.bin / "gemini"), "--skip-trust", "-o", "json", "-p", f"Show me what {AGENT_FILE} says."]
    return harness.run_cli(argv, env=env, cwd=work, timeout=RUN_TIMEOUT_S)


def _final_text(cli: str, run: harness.Run) -> str:
    """The CLI's last answer as it prints it (Claude and Gemini: JSON; Codex: plain text)."""
    if cli == "claude":
        return str(orjson.loads(run.stdout)["result"])
    if cli == "gemini":
        return str(orjson.loads(run.stdout)["response"])
    return run.stdout


RUNNERS: dict[str, Callable[[CliStack, Path], harness.Run]] = {"claude": _claude, "codex": _codex,
                                                                "gemini": _gemini}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cli", list(RUNNERS))
def test_cli_runs_a_tool_turn_through_the_gateway(cli: str, family: str, cli_stack: CliStack,
                                                  tmp_path: Path) -> None:
    provider = PROVIDERS[family][0]
    model = f"{provider}/mock-agent"
    _write_config(cli_stack, cli, model)
    token = f"omniroute-check-{secrets.token_hex(8)}"
    (tmp_path / AGENT_FILE).write_text(token + "\n")
    cli_stack.mock.clear()
    cli_stack.proxy.clear()

    run = RUNNERS[cli](cli_stack, tmp_path)
    sent = cli_stack.proxy.requests()
    if os.environ.get("OMNIROUTE_RECORD_CLI") == "1" and sent:
        harness.write_fixture(FIXTURES / f"{cli}-{family}.json",
                              harness.fixture_document(cli, _version(cli_stack, cli), family, model, sent))

    assert run.returncode == 0, run.explain()
    assert f"{AGENT_DONE} {token}." in _final_text(cli, run), run.explain()
    # The CLI authenticated with the key from the written config …
    credentials = {r.headers.get("authorization", "").removeprefix("Bearer ") or r.headers.get("x-api-key")
                   or r.headers.get("x-goog-api-key") for r in sent}
    assert credentials == {API_KEY}, credentials
    # … and the tool really ran: its output (the token, in no prompt) reached the upstream.
    upstream = cli_stack.mock.requests()
    assert any(token in r.raw_body.decode("utf-8", "replace") for r in upstream), \
        [r.path for r in upstream]
    assert all(r.family == PROVIDERS[family][1] for r in upstream), {r.family for r in upstream}


def test_admin_writes_each_cli_config_pointing_at_the_gateway(cli_stack: CliStack) -> None:
    """Without a base URL the admin points the CLIs at the gateway itself; its status says so."""
    for tool in RUNNERS:
        answer = cli_stack.admin.post(f"/api/cli-tools/{tool}-settings", json={"apiKey": API_KEY})
        assert answer.status_code == 200, answer.text
        shown = cli_stack.admin.get(f"/api/cli-tools/{tool}-settings").json()
        assert shown["pointsAtGateway"] is True and shown["gatewayUrl"] == cli_stack.gateway.url, shown
        assert API_KEY not in orjson.dumps(shown).decode()
