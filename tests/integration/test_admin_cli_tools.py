"""/api/cli-tools: runtime detection with fake CLIs on PATH (runnable, broken, hanging, absent),
and each tool's config written into a temporary HOME, merged with what was there, with a backup."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniroute_admin.features import cli_tools
from tests.integration.admin_app import Admin, running_admin

KEY = "sk-omni-cli-0123456789abcdef"


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("cli")) as running:
        yield running


@pytest.fixture
def home(admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"claude": "echo '2.1.0 (Claude Code)'", "codex": "echo broken >&2; exit 3",
               "droid": "exec sleep 30"}
    for name, body in scripts.items():
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    # OMNIROUTE_CLI_HOME and OMNIROUTE_PUBLIC_URL of the running admin, for this test.
    state = admin.app.state.admin
    monkeypatch.setattr(state, "settings", dataclasses.replace(
        state.settings, cli_home=str(tmp_path / "home"), public_url="http://gateway.test:20128"))
    monkeypatch.setattr(cli_tools, "PROBE_TIMEOUT_S", 0.5)
    return tmp_path / "home"


def _json(path: Path) -> object:
    return json.loads(path.read_text())


async def test_runtime_reports_each_state(admin: Admin, home: Path) -> None:
    claude = (await admin.client.get("/api/cli-tools/runtime/claude")).json()
    assert claude["installed"] and claude["runnable"] and claude["runtimeMode"] == "host"
    assert claude["commandPath"].endswith("/bin/claude") and claude["version"] == "2.1.0 (Claude Code)"
    assert claude["reason"] is None and claude["command"] == "claude"
    codex = (await admin.client.get("/api/cli-tools/runtime/codex")).json()
    assert codex["installed"] and not codex["runnable"] and "exited with 3" in codex["reason"]
    droid = (await admin.client.get("/api/cli-tools/runtime/droid")).json()
    assert droid["installed"] and not droid["runnable"] and "did not answer" in droid["reason"]
    openclaw = (await admin.client.get("/api/cli-tools/openclaw-settings")).json()
    assert not openclaw["installed"] and openclaw["commandPath"] is None and "PATH" in openclaw["reason"]
    assert openclaw["configExists"] is False and openclaw["pointsAtGateway"] is False
    assert (await admin.client.get("/api/cli-tools/runtime/vim")).status_code == 404
    async with admin.anonymous() as client:
        assert (await client.get("/api/cli-tools/claude-settings")).status_code == 401


async def test_claude_settings_are_merged_with_a_backup(admin: Admin, home: Path) -> None:
    path = home / ".claude/settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"theme": "dark", "env": {"OTHER": "1"}}))
    written = await admin.client.post("/api/cli-tools/claude-settings", json={"apiKey": KEY})
    assert written.status_code == 200, written.text
    data = json.loads(path.read_text())
    assert data["theme"] == "dark" and data["env"] == {
        "OTHER": "1", "ANTHROPIC_BASE_URL": "http://gateway.test:20128", "ANTHROPIC_AUTH_TOKEN": KEY}
    assert path.stat().st_mode & 0o777 == 0o600
    assert _json(Path(written.json()["backup"])) == {"theme": "dark", "env": {"OTHER": "1"}}
    shown = (await admin.client.get("/api/cli-tools/claude-settings")).json()
    assert shown["pointsAtGateway"] is True and KEY not in json.dumps(shown)
    log = (await admin.client.get("/api/compliance/audit-log", params={"action": "cli_tools.write"})).json()
    assert log["entries"][0]["target"] == "claude" and KEY not in json.dumps(log)


async def test_codex_droid_openclaw_configs(admin: Admin, home: Path) -> None:
    codex = home / ".codex/config.toml"
    codex.parent.mkdir(parents=True)
    codex.write_text('model = "o3"\nmodel_provider = "openai"\napproval_policy = "never"\n\n'
                     '[model_providers.omniroute]\nname = "old"\nbase_url = "http://old/v1"\n\n'
                     '[profiles.fast]\nmodel = "gpt-5"\n')
    answer = await admin.client.post("/api/cli-tools/codex-settings",
                                     json={"apiKey": KEY, "model": "team-combo"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["env"] == {"OMNIROUTE_API_KEY": answer.json()["env"]["OMNIROUTE_API_KEY"]}
    data = tomllib.loads(codex.read_text())
    assert data["model_provider"] == "omniroute" and data["model"] == "team-combo"
    assert data["approval_policy"] == "never" and data["profiles"] == {"fast": {"model": "gpt-5"}}
    assert data["model_providers"]["omniroute"]["base_url"] == "http://gateway.test:20128/v1"
    assert data["model_providers"]["omniroute"]["env_key"] == "OMNIROUTE_API_KEY"
    assert KEY not in codex.read_text()   # Codex reads its key from the environment
    assert (await admin.client.get("/api/cli-tools/codex-settings")).json()["pointsAtGateway"] is True

    droid = home / ".factory/settings.json"
    for _ in range(2):   # writing twice keeps a single OmniRoute entry
        assert (await admin.client.post("/api/cli-tools/droid-settings",
                                        json={"apiKey": KEY, "model": "fast"})).status_code == 200
    models = json.loads(droid.read_text())["customModels"]
    assert len(models) == 1 and models[0]["baseUrl"] == "http://gateway.test:20128/v1"
    assert models[0]["provider"] == "generic-chat-completion-api" and models[0]["model"] == "fast"

    claw = home / ".openclaw/openclaw.json"
    claw.parent.mkdir(parents=True)
    claw.write_text("{ // JSON5 comment\n}")
    refused = await admin.client.post("/api/cli-tools/openclaw-settings", json={"apiKey": KEY})
    assert refused.status_code == 409 and "by hand" in refused.json()["error"]["message"]
    claw.write_text(json.dumps({"gateway": {"mode": "local"}}))
    assert (await admin.client.post("/api/cli-tools/openclaw-settings",
                                    json={"apiKey": KEY, "model": "fast"})).status_code == 200
    data = json.loads(claw.read_text())
    assert data["gateway"] == {"mode": "local"}
    assert data["models"]["providers"]["omniroute"]["api"] == "openai-completions"
    assert data["agents"]["defaults"]["model"]["primary"] == "omniroute/fast"

    bad = await admin.client.post("/api/cli-tools/claude-settings", json={"apiKey": KEY, "baseUrl": "ftp://x"})
    assert bad.status_code == 400


async def test_gemini_env_and_settings_are_merged(admin: Admin, home: Path) -> None:
    env_file, settings = home / ".gemini/.env", home / ".gemini/settings.json"
    env_file.parent.mkdir(parents=True)
    env_file.write_text('# mine\nDEBUG=1\nGEMINI_API_KEY="old-key"\n')
    settings.write_text(json.dumps({"ui": {"theme": "Dracula"},
                                    "security": {"auth": {"selectedType": "oauth-personal"}}}))
    answer = await admin.client.post("/api/cli-tools/gemini-settings", json={"apiKey": KEY, "model": "team/flash"})
    assert answer.status_code == 200, answer.text
    assert env_file.read_text() == (f'# mine\nDEBUG=1\nGEMINI_API_KEY="{KEY}"\n'
                                    'GOOGLE_GEMINI_BASE_URL="http://gateway.test:20128"\nGEMINI_MODEL="team/flash"\n')
    assert _json(settings) == {"ui": {"theme": "Dracula"}, "security": {"auth": {"selectedType": "gemini-api-key"}}}
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert answer.json()["alsoWritten"] == [str(settings)]
    assert Path(answer.json()["backup"]).name.startswith(".env.omniroute-backup-")
    shown = (await admin.client.get("/api/cli-tools/gemini-settings")).json()
    assert shown["pointsAtGateway"] is True and shown["baseUrl"] == "http://gateway.test:20128"
    quoted = await admin.client.post("/api/cli-tools/gemini-settings", json={"apiKey": 'sk-"quoted"-key'})
    assert quoted.status_code == 409 and env_file.read_text().count(KEY) == 1
