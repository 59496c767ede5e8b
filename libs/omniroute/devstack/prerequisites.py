"""What `make test` needs beyond the Python packages, installed before any test runs (or, when it
cannot be installed from here, named with the exact command that would install it).

Today that is one program: Chromium, which the dashboard's browser test (tests/e2e/test_dashboard.py)
drives through Playwright. Playwright never downloads a browser here: the test uses Debian's
`chromium` package, or the browser that `OMNIROUTE_CHROMIUM` names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
APT_UPDATE = ["apt-get", "update", "-qq"]
APT_INSTALL = ["apt-get", "install", "-y", "-qq", "chromium"]


class MissingPrerequisite(RuntimeError):
    """Something the tests need is absent and cannot be installed by this process."""


def chromium_path() -> str | None:
    """The Chromium the browser test launches: OMNIROUTE_CHROMIUM when set, else Debian's."""
    configured = os.environ.get("OMNIROUTE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    if Path(CHROMIUM).exists():
        return CHROMIUM
    return shutil.which("chromium")


def install_command() -> str:
    """The exact command that installs Chromium on this machine, for someone to run by hand."""
    if os.environ.get("OMNIROUTE_CHROMIUM"):
        return f"OMNIROUTE_CHROMIUM={os.environ['OMNIROUTE_CHROMIUM']} does not exist: point it at a Chromium binary"
    apt = f"{' '.join(APT_UPDATE)} && {' '.join(APT_INSTALL)}"
    if shutil.which("apt-get"):
        return apt if os.geteuid() == 0 else f"sudo sh -c '{apt}'"
    return ("install Chromium with this system's package manager, then "
            "OMNIROUTE_CHROMIUM=/path/to/chromium make test")


def ensure_chromium() -> str:
    """Chromium's path, installing Debian's package first when this process can (root with apt)."""
    found = chromium_path()
    if found:
        return found
    can_install = os.geteuid() == 0 and shutil.which("apt-get") and not os.environ.get("OMNIROUTE_CHROMIUM")
    if not can_install:
        raise MissingPrerequisite(f"the dashboard's browser test needs Chromium; install it with:\n"
                                  f"    {install_command()}")
    print(f"installing Chromium for the dashboard's browser test: {install_command()}", flush=True)
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(APT_UPDATE, check=True, env=apt_env)
    subprocess.run(APT_INSTALL, check=True, env=apt_env, stdout=subprocess.DEVNULL)
    found = chromium_path()
    if not found:
        raise MissingPrerequisite(f"`{' '.join(APT_INSTALL)}` succeeded but no chromium was found")
    return found


def ensure_test_prerequisites() -> None:
    """Everything `make test` needs that pip does not install."""
    ensure_chromium()
