"""Coding CLIs on the machine the admin runs on: are they there, do they run, and their config
files rewritten to point at this gateway (the previous file kept as a backup beside it).

Where each tool reads its settings (from each tool's documentation):
- Claude Code: ~/.claude/settings.json, `env.ANTHROPIC_BASE_URL` / `env.ANTHROPIC_AUTH_TOKEN`
  (the gateway serves /v1/messages at its root URL); with a model, `ANTHROPIC_MODEL` and
  `ANTHROPIC_DEFAULT_HAIKU_MODEL` (Claude Code's background requests — titles, summaries — ask for
  a Haiku model by its Anthropic name, which the gateway does not know);
- Codex: ~/.codex/config.toml, `model_provider` naming a `[model_providers.<id>]` table with
  `base_url` (…/v1) and `env_key`, the variable the key is read from (Codex has no key field);
- Gemini CLI: ~/.gemini/.env (the CLI loads it into its environment): `GEMINI_API_KEY`,
  `GOOGLE_GEMINI_BASE_URL` (the gateway's root URL; the SDK adds /v1beta) and `GEMINI_MODEL`; and
  ~/.gemini/settings.json `security.auth.selectedType = "gemini-api-key"` (without it the CLI
  refuses to start headless);
- Factory Droid: ~/.factory/settings.json, `customModels` entries (`baseUrl` …/v1, `apiKey`,
  `provider: "generic-chat-completion-api"`);
- OpenClaw: ~/.openclaw/openclaw.json, `models.providers.<id>` (`baseUrl` …/v1, `apiKey`,
  `api: "openai-completions"`) and `agents.defaults.model.primary`. The file may be JSON5; one
  that is not plain JSON is left alone (409) rather than rewritten without its comments.

HOME: Settings.cli_home (OMNIROUTE_CLI_HOME) overrides it (tests write to a temporary one). The
use cases around these writers (the audit, the gateway's URL) are services/cli_tools.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

PROVIDER_ID = "omniroute"
TAG = "[OmniRoute]"
CODEX_KEY_ENV = "OMNIROUTE_API_KEY"
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Tool:
    id: str
    command: str
    config: str   # relative to HOME


TOOLS = {t.id: t for t in (Tool("claude", "claude", ".claude/settings.json"),
                           Tool("codex", "codex", ".codex/config.toml"),
                           Tool("gemini", "gemini", ".gemini/.env"),
                           Tool("droid", "droid", ".factory/settings.json"),
                           Tool("openclaw", "openclaw", ".openclaw/openclaw.json"))}


class ConfigError(ValueError):
    """The existing file cannot be updated safely (a 409 with this message)."""


def home(cli_home: str) -> Path:
    """`cli_home` (Settings.cli_home) when set, else the admin user's home."""
    return Path(cli_home or Path.home())


def runtime(tool: Tool) -> dict[str, Any]:
    """installed: on PATH; runnable: `<command> --version` exits 0 within the timeout (no shell)."""
    path = shutil.which(tool.command)
    answer: dict[str, Any] = {"toolId": tool.id, "command": tool.command, "commandPath": path,
                              "installed": path is not None, "runnable": False, "version": None,
                              "runtimeMode": "unavailable", "reason": None}
    if path is None:
        answer["reason"] = f"`{tool.command}` is not on the admin's PATH"
        return answer
    try:
        probe = subprocess.run([path, "--version"], capture_output=True, timeout=PROBE_TIMEOUT_S,
                               check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        answer["reason"] = f"`{tool.command} --version` did not answer within {PROBE_TIMEOUT_S:g} s"
        return answer
    except OSError as exc:
        answer["reason"] = f"`{tool.command}` cannot be started: {exc.strerror or exc}"
        return answer
    output = (probe.stdout or probe.stderr).decode(errors="replace").strip()
    if probe.returncode != 0:
        answer["reason"] = f"`{tool.command} --version` exited with {probe.returncode}: {output[:200]}"
        return answer
    answer.update(runnable=True, version=output.splitlines()[0][:120] if output else None,
                  runtimeMode="host", reason=None)
    return answer


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        value = orjson.loads(path.read_bytes() or b"{}")
    except orjson.JSONDecodeError:
        raise ConfigError(f"{path} is not plain JSON (comments?); edit it by hand") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return value


def current(tool: Tool, home: Path) -> dict[str, Any]:
    """What the tool's file under `home` says about the gateway now (keys masked)."""
    path = home / tool.config
    found: dict[str, Any] = {"configPath": str(path), "configExists": path.exists(), "baseUrl": None}
    try:
        if tool.id == "claude":
            found["baseUrl"] = (_read_json(path).get("env") or {}).get("ANTHROPIC_BASE_URL")
        elif tool.id == "codex" and path.exists():
            data = tomllib.loads(path.read_text())
            provider = data.get("model_provider")
            found["baseUrl"] = ((data.get("model_providers") or {}).get(provider) or {}).get("base_url")
        elif tool.id == "gemini":
            found["baseUrl"] = _read_env(path).get("GOOGLE_GEMINI_BASE_URL")
        elif tool.id == "droid":
            ours = [m for m in _read_json(path).get("customModels") or []
                    if isinstance(m, dict) and str(m.get("displayName", "")).endswith(TAG)]
            found["baseUrl"] = ours[0].get("baseUrl") if ours else None
        elif tool.id == "openclaw":
            providers = (_read_json(path).get("models") or {}).get("providers") or {}
            found["baseUrl"] = (providers.get(PROVIDER_ID) or {}).get("baseUrl")
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        found["error"] = str(exc)
    return found


def write(tool: Tool, home: Path, base_url: str, api_key: str, model: str | None) -> dict[str, Any]:
    """Point the tool's file under `home` at the gateway; the previous file is copied aside first."""
    path = home / tool.config
    base_url = base_url.rstrip("/")
    text = path.read_text() if path.exists() else ""
    also: list[tuple[Path, str]] = []   # further files the tool needs, written the same way
    if tool.id == "codex":
        new = _codex(text, base_url, model)
    elif tool.id == "gemini":
        new = _gemini_env(text, base_url, api_key, model)
        settings_path = path.with_name("settings.json")
        settings = _read_json(settings_path)
        _gemini_settings(settings)
        also.append((settings_path, orjson.dumps(settings, option=orjson.OPT_INDENT_2).decode() + "\n"))
    else:
        data = _read_json(path)
        {"claude": _claude, "droid": _droid, "openclaw": _openclaw}[tool.id](data, base_url, api_key, model)
        new = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    for extra_path, extra in also:
        _replace(extra_path, extra)
    backup = _replace(path, new)
    answer: dict[str, Any] = {"written": str(path), "backup": str(backup) if backup else None}
    if also:
        answer["alsoWritten"] = [str(extra_path) for extra_path, _ in also]
    if tool.id == "codex":
        answer["env"] = {CODEX_KEY_ENV: "your OmniRoute API key (Codex reads the key from it)"}
    return answer


def _replace(path: Path, text: str) -> Path | None:
    """Write `text` to `path`, the previous file copied aside first; returns that copy."""
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.omniroute-backup-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
        shutil.copy2(path, backup)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    # 0600: the file may hold a gateway key. Written aside and renamed: never half a config.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)
    return backup


def _claude(data: dict[str, Any], base_url: str, api_key: str, model: str | None) -> None:
    env = data.setdefault("env", {})
    if not isinstance(env, dict):
        raise ConfigError("`env` in the Claude settings is not an object")
    env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_AUTH_TOKEN=api_key)
    if model:
        env["ANTHROPIC_MODEL"] = model
        env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = model


def _droid(data: dict[str, Any], base_url: str, api_key: str, model: str | None) -> None:
    models = [m for m in data.get("customModels") or []
              if not (isinstance(m, dict) and str(m.get("displayName", "")).endswith(TAG))]
    models.append({"model": model or "auto", "displayName": f"{model or 'auto'} {TAG}",
                   "baseUrl": f"{base_url}/v1", "apiKey": api_key,
                   "provider": "generic-chat-completion-api", "maxOutputTokens": 16384})
    data["customModels"] = models


def _openclaw(data: dict[str, Any], base_url: str, api_key: str, model: str | None) -> None:
    providers = data.setdefault("models", {}).setdefault("providers", {})
    chosen = model or "auto"
    providers[PROVIDER_ID] = {"baseUrl": f"{base_url}/v1", "apiKey": api_key, "api": "openai-completions",
                              "models": [{"id": chosen, "name": f"{chosen} {TAG}"}]}
    if model:
        defaults = data.setdefault("agents", {}).setdefault("defaults", {})
        defaults["model"] = {"primary": f"{PROVIDER_ID}/{model}"}


def _codex(text: str, base_url: str, model: str | None) -> str:
    """No TOML writer in the standard library: edit the text — drop our own table and the top-level
    keys we set, put ours back — then check the result with tomllib."""
    if text:
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the Codex config is not valid TOML ({exc}); fix it first") from None
    ours = {"model_provider"} | ({"model"} if model else set())
    kept: list[str] = []
    in_ours = False
    before_tables = True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            before_tables = False
            in_ours = stripped.replace(" ", "") == f"[model_providers.{PROVIDER_ID}]"
        if in_ours or (before_tables and stripped.split("=", 1)[0].strip() in ours and "=" in stripped):
            continue
        kept.append(line)
    head = [f'model_provider = "{PROVIDER_ID}"'] + ([f"model = {_toml_str(model)}"] if model else [])
    table = [f"[model_providers.{PROVIDER_ID}]", 'name = "OmniRoute"',
             f"base_url = {_toml_str(base_url + '/v1')}",
             f'env_key = "{CODEX_KEY_ENV}"', 'wire_api = "responses"']
    result = "\n".join([*head, *kept]).rstrip("\n") + "\n\n" + "\n".join(table) + "\n"
    parsed = tomllib.loads(result)   # what we write must read back as we meant it
    if parsed.get("model_provider") != PROVIDER_ID:
        raise ConfigError("the Codex config could not be updated safely; edit it by hand")
    return result


def _read_env(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file (quotes around a value removed; comments skipped)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and key and not key.startswith("#"):
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                    value = value[1:-1]
                values[key.strip()] = value
    return values


def _gemini_env(text: str, base_url: str, api_key: str, model: str | None) -> str:
    """The .env with our variables replaced and every other line kept as it was."""
    ours = {"GEMINI_API_KEY": api_key, "GOOGLE_GEMINI_BASE_URL": base_url}
    if model:
        ours["GEMINI_MODEL"] = model
    for value in ours.values():
        if any(c in value for c in "\"\\\n\r"):
            raise ConfigError("a value for the Gemini .env holds a quote, backslash or line break")
    kept = [line for line in text.splitlines()
            if line.strip().removeprefix("export ").partition("=")[0].strip() not in ours]
    return "\n".join([*kept, *(f'{key}="{value}"' for key, value in ours.items())]) + "\n"


def _gemini_settings(data: dict[str, Any]) -> None:
    security = data.setdefault("security", {})
    auth = security.setdefault("auth", {}) if isinstance(security, dict) else None
    if not isinstance(auth, dict):
        raise ConfigError("`security.auth` in the Gemini settings is not an object")
    auth["selectedType"] = "gemini-api-key"


def _toml_str(value: str) -> str:
    return orjson.dumps(value).decode()   # a JSON string is a valid TOML basic string
