"""Start every OmniRoute service as its own process, wait until each is ready, stop them all."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import http.client
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from omniroute.control import RESTART_EXIT_CODE
from omniroute.devstack import child
from omniroute.devstack.backing import listening, wait_listening

log = logging.getLogger("omniroute.devstack")


# Ports picked by free_port, each with its reservation held (an open, flock'ed file) until this
# process exits (its files are removed then). Not released when a stack stops: a stopped stack
# may be started again on the same ports (restarts, the reliability cluster), and one descriptor
# per port is cheap. A forked child does not own its parent's reservations (nor removes them).
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "omniroute-ports"
_reserved: dict[int, IO[bytes]] = {}
os.register_at_fork(after_in_child=_reserved.clear)


def free_port() -> int:
    """A port nothing listens on that no other process using free_port holds either.

    Binding port 0 alone is not enough: between the pick and the service's own bind, another
    process (a parallel xdist worker) may be handed the same number. So every pick is reserved
    across processes by an exclusive flock on PORT_LOCK_DIR/<port>.lock, taken while the port is
    still bound here and held until this process exits (the kernel drops it then, even after a
    kill -9); a port whose lock someone else holds is skipped."""
    PORT_LOCK_DIR.mkdir(exist_ok=True)
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if port in _reserved:
                continue
            path = PORT_LOCK_DIR / f"{port}.lock"
            lock = open(path, "ab")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            if not _still_named(lock, path):   # its holder removed it on exit: take a fresh one
                lock.close()
                continue
        _reserved[port] = lock
        return port


def _still_named(lock: IO[bytes], path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
    except FileNotFoundError:
        return False


@atexit.register
def _remove_port_locks() -> None:
    """Remove this process's lock files (still holding each lock, so that a process that opened
    one meanwhile sees it unnamed and picks again): the directory keeps only live reservations."""
    for port, lock in _reserved.items():
        with contextlib.suppress(OSError):
            os.unlink(PORT_LOCK_DIR / f"{port}.lock")
        lock.close()


@dataclass
class Ports:
    edge: int = 20128
    admin: int = 20129
    router: int = 50051
    executor: int = 50061
    accounting: int = 20131
    analytics: int = 20132

    @classmethod
    def free(cls) -> Ports:
        return cls(edge=free_port(), admin=free_port(), router=free_port(), executor=free_port(),
                   accounting=free_port(), analytics=free_port())


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes] | None
    # How it was started (module, args, extra env): what a restart order starts again.
    launch: tuple[str, tuple[str, ...], dict[str, str]] | None = None


@dataclass
class Stack:
    """The services of one stack. `env` is passed to every service on top of os.environ."""

    ports: Ports
    env: dict[str, str]
    log_dir: Path | None = None   # None: services write to this terminal
    processes: list[ServiceProcess] = field(default_factory=list)
    router_replicas: int = 1      # extra routers listen on free ports; edges round-robin over all
    edge_workers: int = 1         # uvicorn worker processes sharing the edge port
    cpus: set[int] | None = None  # pin every service to these CPUs (benchmarks)
    _router_ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.edge}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.admin}"

    def service_env(self) -> dict[str, str]:
        ports = self.ports
        return {
            **os.environ, **self.env,
            "OMNIROUTE_PORT": str(ports.edge), "ADMIN_PORT": str(ports.admin),
            "ROUTER_PORT": str(ports.router), "EXECUTOR_PORT": str(ports.executor),
            "ACCOUNTING_PORT": str(ports.accounting), "ANALYTICS_PORT": str(ports.analytics),
            "ROUTER_ADDR": self.router_address, "EXECUTOR_ADDR": f"127.0.0.1:{ports.executor}",
            "OMNIROUTE_EDGE_WORKERS": str(self.edge_workers),
            "ADMIN_URL": self.admin_url,
        }

    @property
    def router_address(self) -> str:
        ports = self._router_ports or [self.ports.router]
        if len(ports) == 1:
            return f"127.0.0.1:{ports[0]}"
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)

    def start_service(self, name: str, module: str, *args: str,
                      env: dict[str, str] | None = None) -> ServiceProcess:
        log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = open(self.log_dir / f"{name}.log", "ab")
        # No preexec_fn: it makes the start fork this process, which breaks gRPC (child.py).
        process = subprocess.Popen(child.command(module, *args, cpus=self.cpus),
                                   env={**self.service_env(), **(env or {})},
                                   stdout=log_file, stderr=subprocess.STDOUT if log_file else None)
        service = ServiceProcess(name, process, log_file, launch=(module, args, dict(env or {})))
        self.processes.append(service)
        return service

    def _relaunch(self, service: ServiceProcess) -> ServiceProcess:
        """Start a service again in place (same name, module, arguments and start order)."""
        assert service.launch is not None
        index = self.processes.index(service)
        if service.log_file is not None:
            service.log_file.close()
        module, args, env = service.launch
        fresh = self.start_service(service.name, module, *args, env=env)
        self.processes.pop()   # start_service appended it; keep the start order for stop()
        self.processes[index] = fresh
        return fresh

    def restart_requested(self) -> list[str]:
        """Start again, in place, every service that exited with RESTART_EXIT_CODE (it obeyed a
        restart order from the admin, omniroute.control); returns their names."""
        restarted = []
        for service in list(self.processes):
            if service.process.poll() != RESTART_EXIT_CODE or service.launch is None:
                continue
            self._relaunch(service)
            restarted.append(service.name)
        return restarted

    def _started(self, service: ServiceProcess, wait: Callable[[subprocess.Popen[bytes]], None]) -> None:
        """Wait until `service` is up; one that dies while starting fails the start."""
        wait(service.process)

    def start(self, timeout: float = 60.0) -> None:
        """Start in dependency order and wait until every service is ready."""
        executor = self.start_service("executor", "omniroute_executor", "--family", "all",
                                      env=self._session_port())
        self._router_ports = [self.ports.router] + [free_port() for _ in range(self.router_replicas - 1)]
        routers = [self.start_service(f"router-{index}" if index else "router", "omniroute_router",
                                      env={"ROUTER_PORT": str(port), **self._session_port()})
                   for index, port in enumerate(self._router_ports)]
        accounting = self.start_service("accounting", "omniroute_accounting")
        analytics = self.start_service("analytics", "omniroute_analytics")
        admin = self.start_service("admin", "omniroute_admin")
        self._started(executor, lambda p: wait_listening("127.0.0.1", self.ports.executor, "executor", timeout, p))
        for port, router in zip(self._router_ports, routers, strict=True):
            self._started(router, lambda p, port=port, name=router.name: wait_listening(  # type: ignore[misc]
                "127.0.0.1", port, name, timeout, p))
        self._started(admin, lambda p: _wait_ready(f"{self.admin_url}/readyz", "admin", timeout, p))
        edge = self.start_service("edge", "omniroute_edge")
        self._started(edge, lambda p: _wait_ready(f"{self.url}/readyz", "edge", timeout, p))
        self._started(accounting, lambda p: _wait_ready(
            f"http://127.0.0.1:{self.ports.accounting}/readyz", "accounting", timeout, p))
        self._started(analytics, lambda p: _wait_ready(
            f"http://127.0.0.1:{self.ports.analytics}/readyz", "analytics", timeout, p))
        # A port another process listens on passes the waits above while its service dies.
        if dead := self.check_alive():
            raise RuntimeError("; ".join(f"{name} {how_it_ended(self.service(name).process.returncode)} "
                                         "while the stack started" for name in dead))

    def _session_port(self) -> dict[str, str]:
        """A reserved port for a router's or the executor's TCP session streams: a port the kernel
        picked (OMNIROUTE_HOP_TCP_PORT=0) could be one reserved here for a service not yet
        listening, which would then fail to start."""
        if "OMNIROUTE_HOP_TCP_PORT" in {**os.environ, **self.env}:
            return {}
        return {"OMNIROUTE_HOP_TCP_PORT": str(free_port())}

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM everything (services drain), then SIGKILL what is still running."""
        for service in reversed(self.processes):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in self.processes:
            try:
                service.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
            if service.log_file is not None:
                service.log_file.close()
        self.processes.clear()

    def service(self, name: str) -> ServiceProcess:
        return next(s for s in self.processes if s.name == name)

    def check_alive(self) -> list[str]:
        """Names of services that have exited."""
        return [s.name for s in self.processes if s.process.poll() is not None]


def how_it_ended(code: int) -> str:
    """A process's exit status in words: `exited with code 3`, `was killed by SIGKILL`."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    # The kernel's OOM killer sends SIGKILL too: say so, it is the usual cause on a laptop.
    return f"was killed by {name}" + (" (kill -9, or out of memory)" if -code == signal.SIGKILL else "")


@dataclass
class Supervisor:
    """Keeps a started stack's services running, the way Kubernetes keeps a pod's containers
    running (restartPolicy Always, CrashLoopBackOff):

    - a service that crashed (an exit code other than 0 and 75, or killed by a signal: a crash,
      the OOM killer, kill -9) is started again in place, same ports and arguments, after a
      delay that doubles with every crash in a row (1 s, 2 s, 4 s … up to 30 s); a service that
      then stays up for `healthy_after_s` starts again from the shortest delay;
    - one that exited with 75 obeyed a restart order from the admin (omniroute.control): it is
      started again at once;
    - one that exited with 0 obeyed a shutdown order (or a plain SIGTERM it drained for):
      `poll` reports it, and `make run` stops the whole stack.
    Each decision is one line through `say`."""

    stack: Stack
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    healthy_after_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _crashes: dict[str, int] = field(default_factory=dict)        # crashes in a row, per service
    _restart_at: dict[str, float] = field(default_factory=dict)   # dead, waiting out the delay
    _up_since: dict[str, float] = field(default_factory=dict)

    def poll(self) -> list[str]:
        """One look at every service: start again those whose time has come. Returns the names
        of services that exited with 0 (asked to stop), which nobody starts again."""
        now = self.clock()
        restarted = self.stack.restart_requested()
        if restarted:
            self.say(f"restarting on the admin's order: {', '.join(restarted)}")
            for name in restarted:
                self._up_since[name] = now
        stopped = []
        for service in list(self.stack.processes):
            name, code = service.name, service.process.poll()
            if code is None:
                up_since = self._up_since.setdefault(name, now)
                if now - up_since >= self.healthy_after_s:
                    self._crashes.pop(name, None)
            elif code == 0:
                stopped.append(name)
            elif name not in self._restart_at:
                crashes = self._crashes.get(name, 0)
                delay = min(self.max_delay_s, self.first_delay_s * 2 ** crashes)
                self._crashes[name] = crashes + 1
                self._restart_at[name] = now + delay
                self._up_since.pop(name, None)
                self.say(f"{name} {how_it_ended(code)}; starting it again in {delay:g} s"
                         f" (crash {crashes + 1} in a row)")
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                self.stack._relaunch(service)
                self._up_since[name] = now
                log.info("%s started again (pid %d)", name, self.stack.service(name).process.pid)
        return stopped

    def run(self, until: Callable[[], bool], interval_s: float = 0.5) -> list[str]:
        """Poll every `interval_s` until `until()` is true (Ctrl-C in `make run`) or a service
        exited with 0; returns the names of the services that exited with 0."""
        while not until():
            stopped = self.poll()
            if stopped:
                return stopped
            time.sleep(interval_s)
        return []


def _wait_ready(url: str, what: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):
            # Not an HTTP answer (yet): e.g. another process's gRPC server took the port this
            # service was given; keep polling, so the service's own exit explains the failure.
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready at {url} within {timeout}s")
        time.sleep(0.1)


def port_in_use(port: int) -> bool:
    return listening("127.0.0.1", port)
