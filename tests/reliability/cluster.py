"""A gateway with two of each request-path service, on backing servers of its own, plus a load
generator that records every request: what the process-fault tests kill, restart and count.

The backing servers (NATS, Redis, Postgres) are started here, on free ports, because the tests
restart them: the machine's shared servers serve other people's tests and must never be touched.
Clients reach the two edges through `Balancer`, which does what a load balancer does: round robin
over the edges, and a connection refused (the edge is gone) goes to the next edge."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import yaml

from omniroute import secrets
from omniroute.devstack.backing import ensure_nats, ensure_postgres, ensure_redis, listening, wait_listening
from omniroute.devstack.stack import Stack, free_port
from omniroute.store import migrate
from tests import log_scan
from tests.support import unique_name

#: kind → (module, args, the env var naming its port)
SERVICES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "executor": ("omniroute_executor", ("--family", "all"), "EXECUTOR_PORT"),
    "router": ("omniroute_router", (), "ROUTER_PORT"),
    "accounting": ("omniroute_accounting", (), "ACCOUNTING_PORT"),
    "edge": ("omniroute_edge", (), "OMNIROUTE_PORT"),
}


@dataclass
class Backing:
    """NATS, Redis and Postgres of our own, restartable on the same port and data."""

    state_dir: Path
    nats_url: str = field(default_factory=lambda: f"nats://127.0.0.1:{free_port()}")
    redis_url: str = field(default_factory=lambda: f"redis://127.0.0.1:{free_port()}/0")
    pg_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes] | None] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    def start(self, name: str) -> None:
        if name == "nats":
            self.processes[name] = ensure_nats(self.nats_url, self.state_dir)
        elif name == "redis":
            self.processes[name] = ensure_redis(self.redis_url, self.state_dir)
        else:
            self.processes[name] = ensure_postgres(self.database_url, self.state_dir)
            self._wait_accepting()

    def _wait_accepting(self, timeout_s: float = 60.0) -> None:
        """Postgres listens before it accepts connections ("the database system is starting up")."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.database_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, name: str) -> None:
        """An orderly stop (a restart is planned maintenance); Postgres by its postmaster pid,
        since as root it runs as `nobody` under runuser."""
        if name == "postgres":
            pid_file = self.state_dir / "postgres" / "postmaster.pid"
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        process = self.processes.pop(name, None)
        if process is not None:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        port = {"nats": int(self.nats_url.rsplit(":", 1)[1]),
                "redis": int(self.redis_url.rsplit(":", 1)[1].split("/")[0]), "postgres": self.pg_port}[name]
        deadline = time.monotonic() + 15
        while listening("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, name: str, down_s: float) -> None:
        self.stop(name)
        time.sleep(down_s)
        self.start(name)


@dataclass
class Cluster:
    backing: Backing
    stack: Stack
    env: str
    ports: dict[str, list[int]]
    replicas: dict[tuple[str, int], subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def edge_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports["edge"]]

    def _env(self, kind: str, index: int) -> dict[str, str]:
        def listing(kind: str) -> str:
            return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in self.ports[kind])
        return {SERVICES[kind][2]: str(self.ports[kind][index]), "ROUTER_ADDR": listing("router"),
                "EXECUTOR_ADDR": listing("executor")}

    def start_replica(self, kind: str, index: int) -> None:
        """Start one replica and wait until it serves; one that dies while starting fails the
        test (nothing starts it again: a crash at start is a bug to see, not to hide)."""
        module, args, _ = SERVICES[kind]
        name = f"{kind}{index + 1}"
        service = self.stack.start_service(name, module, *args, env=self._env(kind, index))
        self.replicas[(kind, index)] = service.process
        port = self.ports[kind][index]
        if kind in ("edge", "accounting"):
            _wait_ready(f"http://127.0.0.1:{port}/readyz", service.process)
        else:
            wait_listening("127.0.0.1", port, name, 60, service.process)

    def kill(self, kind: str, index: int) -> None:
        process = self.replicas.pop((kind, index))
        process.kill()
        process.wait()

    def signal(self, kind: str, index: int, sig: int) -> subprocess.Popen[bytes]:
        process = self.replicas[(kind, index)]
        process.send_signal(sig)
        return process

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.backing.database_url) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {timeout}s")


@contextlib.contextmanager
def running_cluster(tmp_dir: Path, config: dict[str, Any], extra_env: dict[str, str]) -> Iterator[Cluster]:
    # Not under pytest's temp folder: any pytest run on the machine resets pytest-of-<user> to
    # 0700, and Postgres (run as `nobody` when root) must still reach its data after a restart.
    state_dir = Path(tempfile.mkdtemp(prefix="omniroute-reliability-"))
    state_dir.chmod(0o755)
    backing = Backing(state_dir)
    try:
        for name in ("nats", "redis", "postgres"):
            backing.start(name)
        migrate.migrate(backing.database_url)
        env_name = unique_name("rel")
        config_path = tmp_dir / "omniroute.yaml"
        config_path.write_text(yaml.safe_dump(config))
        env = {"OMNIROUTE_ENV": env_name, "DATABASE_URL": backing.database_url,
               "REDIS_URL": backing.redis_url, "NATS_URL": backing.nats_url,
               "OMNIROUTE_MASTER_KEY": secrets.generate_master_key(), "OMNIROUTE_CONFIG": str(config_path),
               "REQUIRE_API_KEY": "true", "INITIAL_PASSWORD": "cluster-admin-password",
               "OMNIROUTE_CONFIG_REFRESH_S": "30", "OMNIROUTE_BACKUP_DIR": str(tmp_dir / "backups"),
               "OMNIROUTE_DRAIN_S": "20", **extra_env}
        stack = Stack(env=env, log_dir=tmp_dir / "logs", ports=_ports())
        ports = {kind: [free_port(), free_port()] for kind in SERVICES}
        cluster = Cluster(backing=backing, stack=stack, env=env_name, ports=ports)
        # Every replica's log is scanned for unexpected exceptions (tests/log_scan.py), after each
        # test and once the cluster stopped; what the faults make expected is allow-listed there.
        with log_scan.watched(tmp_dir / "logs", "cluster") as logs:
            try:
                # Admin first: it loads the config file into Postgres, which every other service reads.
                admin = stack.start_service("admin", "omniroute_admin")
                _wait_ready(f"{stack.admin_url}/readyz", admin.process)
                stack.start_service("analytics", "omniroute_analytics")
                for kind in ("executor", "router", "accounting", "edge"):
                    for index in (0, 1):
                        cluster.start_replica(kind, index)
                logs.assert_clean("while starting")
                yield cluster
            finally:
                stack.stop()
        logs.assert_clean("after the last test, or while stopping")
    finally:
        for name in ("postgres", "redis", "nats"):
            backing.stop(name)
        shutil.rmtree(state_dir, ignore_errors=True)


def _ports() -> Any:
    from omniroute.devstack.stack import Ports

    return Ports.free()


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    started: float
    ended: float
    edge: int
    stream: bool
    status: int                 # HTTP status; 0 when the connection failed
    ok: bool                    # a complete, successful answer
    clean: bool                 # ok, or a failure in the caller's format / a closed connection
    request_id: str = ""
    detail: str = ""
    retry_after: str = ""       # the Retry-After header of a refusal


class Balancer:
    """Round robin over the edges; a refused connection moves on (the edge is gone)."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = [httpx.Client(base_url=url, timeout=httpx.Timeout(15.0, connect=1.0)) for url in urls]
        self._next = 0
        self._lock = threading.Lock()

    def pick(self) -> int:
        with self._lock:
            self._next = (self._next + 1) % len(self.clients)
            return self._next

    def close(self) -> None:
        for client in self.clients:
            client.close()


def one_request(balancer: Balancer, key: str, model: str, stream: bool) -> Result:
    started = time.monotonic()
    edge = balancer.pick()
    for attempt in range(len(balancer.clients)):
        index = (edge + attempt) % len(balancer.clients)
        try:
            return _send(balancer.clients[index], index, key, model, stream, started)
        except httpx.ConnectError:
            continue   # refused: what a load balancer retries elsewhere, the request was never sent
    return Result(started, time.monotonic(), edge, stream, 0, False, False, detail="no edge accepted")


def _send(client: httpx.Client, index: int, key: str, model: str, stream: bool, started: float) -> Result:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "load"}]}
    try:
        with client.stream("POST", "/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {key}"}) as response:
            raw = response.read()
    except httpx.ConnectError:
        raise
    except httpx.TimeoutException as exc:   # a hang: never clean
        return Result(started, time.monotonic(), index, stream, 0, False, False, detail=repr(exc))
    except httpx.TransportError as exc:     # the edge died under us: closed, not hung
        return Result(started, time.monotonic(), index, stream, 0, False, True, detail=repr(exc))
    ended = time.monotonic()
    request_id = response.headers.get("x-omniroute-request-id", "")
    ok, clean, detail = _judge(response.status_code, raw, stream)
    return Result(started, ended, index, stream, response.status_code, ok, clean, request_id, detail,
                  response.headers.get("retry-after", ""))


def _judge(status: int, raw: bytes, stream: bool) -> tuple[bool, bool, str]:
    if b"Traceback" in raw:
        return False, False, "traceback in the body"
    if status != 200:
        try:
            error = orjson.loads(raw)["error"]
            return False, bool(error.get("message")), f"{status} {error.get('code')}: {error.get('message')}"
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return False, False, f"{status} not an OpenAI error: {raw[:200]!r}"
    if not stream:
        try:
            return bool(orjson.loads(raw)["choices"][0]["message"]["content"]), True, ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return False, False, f"bad body {raw[:200]!r}"
    if raw.rstrip().endswith(b"data: [DONE]"):
        return True, True, ""
    for line in raw.splitlines():
        if line.startswith(b"data: {") and b'"error"' in line:
            return False, True, line.decode(errors="replace")[:300]
    return False, False, f"a stream that ended without [DONE] or an error: {raw[-200:]!r}"


class Load:
    """`workers` threads sending requests back to back until stopped."""

    def __init__(self, balancer: Balancer, key: str, model: str, workers: int = 6) -> None:
        self.balancer, self.key, self.model = balancer, key, model
        self.results: list[Result] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def _work(self, index: int) -> None:
        stream = bool(index % 2)
        while not self._stop.is_set():
            result = one_request(self.balancer, self.key, self.model, stream)
            with self._lock:
                self.results.append(result)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
