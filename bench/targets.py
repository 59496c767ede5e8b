"""The three things a benchmark runs against, each started on the CPUs it is given:
the mock upstream alone (the floor), OmniRoute as `make run` starts it, and LiteLLM's proxy."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from omniroute import secrets
from omniroute.devstack import child
from omniroute.devstack.stack import Ports, Stack, free_port
from tests.redis_keys import delete_env_keys
from tests.support import BASE_DATABASE_URL, NATS_URL, REDIS_URL, delete_stream, temp_database, test_settings

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
OMNI_KEY = "sk-omni-bench-0123456789abcdef"
LITELLM_KEY = "sk-litellm-bench-0123456789"
MODEL = "mock-fast"


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Mock:
    """The fast OpenAI mock (never the bottleneck: see its docstring for its own numbers)."""

    cpus: set[int]
    tokens: int = 100
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        # Pinned by the devstack's child launcher, as the services are (no preexec_fn: child.py).
        self.process = subprocess.Popen(
            child.command("tests.mocks.fast_openai", "--port", str(self.port), "--tokens", str(self.tokens),
                          cpus=self.cpus),
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"{self.base_url}/models")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


class OmniRoute:
    def __init__(self, mock: Mock, cpus: set[int], work_dir: Path, *, router_replicas: int = 1,
                 edge_workers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        self.mock, self.cpus, self.work_dir = mock, cpus, work_dir
        self.extra_env = extra_env or {}   # on top of the stack's own (e.g. OMNIROUTE_EDGE_SERVER)
        self.router_replicas, self.edge_workers = router_replicas, edge_workers
        self._database = temp_database()
        self.stack: Stack | None = None

    @property
    def url(self) -> str:
        assert self.stack is not None
        return self.stack.url

    def start(self) -> None:
        database_url = self._database.__enter__()
        self.settings = test_settings(database_url)
        config = {"providers": [{"id": "bench", "type": "openai-compatible", "base_url": self.mock.base_url,
                                 "models": [MODEL], "connections": [{"name": "main", "api_key": "sk-mock"}]}],
                  "keys": [{"name": "bench", "key": OMNI_KEY}]}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "omniroute.yaml").write_text(yaml.safe_dump(config))
        env = {"OMNIROUTE_ENV": self.settings.env, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "NATS_URL": NATS_URL, "OMNIROUTE_MASTER_KEY": secrets.generate_master_key(),
               "OMNIROUTE_CONFIG": str(self.work_dir / "omniroute.yaml"), "REQUIRE_API_KEY": "true",
               "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "true", "LOG_LEVEL": "warning",
               "OMNIROUTE_BACKUP_DIR": str(self.work_dir / "backups"), **self.extra_env}
        self.stack = Stack(ports=Ports.free(), env=env, log_dir=self.work_dir / "logs", cpus=self.cpus,
                           router_replicas=self.router_replicas, edge_workers=self.edge_workers)
        self.stack.start(timeout=90)

    def pids(self) -> dict[str, list[int]]:
        assert self.stack is not None
        result: dict[str, list[int]] = {}
        for service in self.stack.processes:
            result.setdefault(service.name.split("-")[0], []).extend(
                [service.process.pid, *child_pids(service.process.pid)])
        return result

    def stop(self) -> None:
        if self.stack:
            self.stack.stop()
            import asyncio

            asyncio.run(delete_stream(self.settings))
            delete_env_keys(REDIS_URL, self.settings.env)   # the shared Redis keeps nothing of a run
        self._database.__exit__(None, None, None)


class LiteLLM:
    def __init__(self, mock: Mock, cpus: set[int], work_dir: Path, workers: int = 1) -> None:
        self.mock, self.cpus, self.work_dir, self.workers = mock, cpus, work_dir, workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = LITELLM_VENV / "bin" / "litellm"
        if not binary.exists():
            raise RuntimeError("LiteLLM is not installed: run `make bench` (it creates bench/.litellm-venv)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = {"model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": self.mock.base_url, "api_key": "sk-mock"}}],
            "litellm_settings": {"telemetry": False},
            "general_settings": {"master_key": LITELLM_KEY}}
        (self.work_dir / "litellm.yaml").write_text(yaml.safe_dump(config))
        log = open(self.work_dir / "litellm.log", "ab")
        self.process = subprocess.Popen(
            child.program_command(str(binary), "--config", str(self.work_dir / "litellm.yaml"),
                                  "--host", "127.0.0.1", "--port", str(self.port),
                                  "--num_workers", str(self.workers), cpus=self.cpus),
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
            stdout=log, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/health/liveliness", timeout=120)

    def pids(self) -> dict[str, list[int]]:
        assert self.process is not None
        return {"litellm": [self.process.pid, *child_pids(self.process.pid)]}

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def child_pids(pid: int) -> list[int]:
    """Descendants (uvicorn workers, LiteLLM's workers)."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child_pid in children:
        found.append(int(child_pid))
        found.extend(child_pids(int(child_pid)))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


__all__ = ["BASE_DATABASE_URL", "LiteLLM", "Mock", "OmniRoute", "cpu_seconds", "peak_rss_mb", "rss_mb"]
