"""One place per concept, checked on the source: the environment is read only by
omniroute.settings, and SQL lives only in the repositories of omniroute.store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omniroute.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The devstack launcher sets up processes (it reads and writes their environment); v1 is generated.
NOT_SERVICE_CODE = ("libs/omniroute/devstack/", "libs/omniroute/v1/")
ENV_READ = re.compile(r"\bos\.(?:environ|getenv)\b|\bfrom os import .*\b(?:environ|getenv)\b")
SQL = re.compile(r"""["'](?:SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|WITH \w+ AS) """)


def _service_code() -> list[tuple[str, str]]:
    files = sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")])
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(NOT_SERVICE_CODE):
            found.append((rel, path.read_text()))
    return found


def test_only_settings_reads_the_environment() -> None:
    readers = [rel for rel, text in _service_code()
               if rel != "libs/omniroute/settings.py" and ENV_READ.search(text)]
    assert not readers, f"read the variable through omniroute.settings.Settings instead: {readers}"


def test_sql_lives_only_in_the_store() -> None:
    outside = [rel for rel, text in _service_code()
               if not rel.startswith("libs/omniroute/store/") and SQL.search(text)]
    assert not outside, f"move these statements into a repository under libs/omniroute/store: {outside}"


def test_settings_read_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", "yes")
    monkeypatch.setenv("OMNIROUTE_DRAIN_S", "7.5")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("OMNIROUTE_PUBLIC_URL", " https://ai.example.com ")
    monkeypatch.delenv("OMNIROUTE_CLI_HOME", raising=False)
    settings = Settings()
    assert settings.allow_private_upstreams is True and settings.drain_s == 7.5
    assert settings.log_level == "DEBUG" and settings.public_url == "https://ai.example.com"
    assert settings.cli_home == "" and settings.executor_families == "all"
    assert settings.max_audio_bytes == 25 * 1024 * 1024
