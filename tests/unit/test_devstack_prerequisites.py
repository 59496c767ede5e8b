"""`make test-deps` (omniroute.devstack.prerequisites): Chromium found, installed as root with
apt-get, or — when this user cannot install it — a stop at once with the exact command."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from omniroute.devstack import prerequisites


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A machine without Chromium; `apt-get` present; root unless a test says otherwise. apt-get
    runs are recorded, and installing puts a browser where Debian's package would."""
    state: dict[str, Any] = {"uid": 0, "apt": True, "runs": [], "browser": tmp_path / "chromium"}
    monkeypatch.delenv("OMNIROUTE_CHROMIUM", raising=False)
    monkeypatch.setattr(prerequisites, "CHROMIUM", str(state["browser"]))
    monkeypatch.setattr(prerequisites.os, "geteuid", lambda: state["uid"])
    monkeypatch.setattr(prerequisites.shutil, "which",
                        lambda name: "/usr/bin/apt-get" if name == "apt-get" and state["apt"] else None)

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        state["runs"].append(command)
        assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        if command[:2] == ["apt-get", "install"]:
            state["browser"].write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(prerequisites.subprocess, "run", run)
    return state


def test_present_chromium_is_used_as_it_is(machine: dict[str, Any]) -> None:
    machine["browser"].write_text("#!/bin/sh\n")
    assert prerequisites.ensure_chromium() == str(machine["browser"])
    assert machine["runs"] == []


def test_root_with_apt_installs_debians_package(machine: dict[str, Any]) -> None:
    assert prerequisites.ensure_chromium() == str(machine["browser"])
    assert machine["runs"] == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]]


def test_another_user_is_told_the_exact_command(machine: dict[str, Any]) -> None:
    machine["uid"] = 1000
    with pytest.raises(prerequisites.MissingPrerequisite) as missing:
        prerequisites.ensure_chromium()
    assert "sudo sh -c 'apt-get update -qq && apt-get install -y -qq chromium'" in str(missing.value)
    assert machine["runs"] == []


def test_without_apt_the_message_says_how_to_point_at_a_browser(machine: dict[str, Any]) -> None:
    machine["apt"] = False
    with pytest.raises(prerequisites.MissingPrerequisite) as missing:
        prerequisites.ensure_chromium()
    assert "OMNIROUTE_CHROMIUM=/path/to/chromium make test" in str(missing.value)
    assert machine["runs"] == []


def test_a_configured_browser_that_is_absent_is_not_replaced(machine: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    machine["browser"].write_text("#!/bin/sh\n")   # Debian's is there, but not the one asked for
    monkeypatch.setenv("OMNIROUTE_CHROMIUM", "/opt/nowhere/chrome")
    with pytest.raises(prerequisites.MissingPrerequisite) as missing:
        prerequisites.ensure_chromium()
    assert "OMNIROUTE_CHROMIUM=/opt/nowhere/chrome does not exist" in str(missing.value)
    assert machine["runs"] == []
