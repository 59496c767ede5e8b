"""`python -m omniroute.devstack run` (what `make run` does): the whole stack on this machine."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from omniroute import secrets, settings
from omniroute.devstack import backing, prerequisites
from omniroute.devstack.stack import Ports, Stack, Supervisor
from omniroute.store import migrate

STATE_DIR = Path(".omniroute")


def master_key() -> str:
    """The master key from the environment, else one generated once and kept locally."""
    if os.environ.get("OMNIROUTE_MASTER_KEY"):
        return os.environ["OMNIROUTE_MASTER_KEY"]
    path = STATE_DIR / "master.key"
    if not path.exists():
        STATE_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.generate_master_key())
        path.chmod(0o600)
    return path.read_text().strip()


@contextlib.contextmanager
def backing_services(config: settings.Settings) -> Iterator[None]:
    """NATS, Redis and Postgres for the duration: those already listening are used as they are;
    the others are started here and stopped on the way out."""
    STATE_DIR.mkdir(exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for ensure, url in ((backing.ensure_nats, config.nats_url), (backing.ensure_redis, config.redis_url),
                            (backing.ensure_postgres, config.database_url)):
            process = ensure(url, STATE_DIR)
            if process is not None:
                started.append(process)
        yield
    finally:
        for process in started:
            process.terminate()
            process.wait(10)


def test(pytest_args: list[str]) -> int:
    """Run pytest with the backing services up (what `make test` does)."""
    config = settings.load()
    with backing_services(config):
        return subprocess.call([sys.executable, "-m", "pytest", *pytest_args])


def run() -> None:
    config = settings.load()
    with backing_services(config):
        _run_stack(config)


def _run_stack(config: settings.Settings) -> None:
    migrate.migrate(config.database_url)
    env = {"OMNIROUTE_MASTER_KEY": master_key(),
           "REQUIRE_API_KEY": os.environ.get("REQUIRE_API_KEY", "true"),
           # A laptop's upstreams (mocks, a local Ollama) listen on 127.0.0.1 (omniroute.ssrf).
           "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": os.environ.get("OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", "true"),
           "QDRANT_URL": config.qdrant_url or str(STATE_DIR / "qdrant")}
    stack = Stack(ports=Ports(edge=config.edge_port, admin=config.admin_port,
                              router=config.router_port, executor=config.executor_port,
                              accounting=config.accounting_port, analytics=config.analytics_port),
                  env=env)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print(f"\nOmniRoute is running: {stack.url}   (Ctrl-C stops everything)\n", flush=True)
        # Crashed services start again (with a crash-loop delay), a restart order from the admin
        # restarts its services at once, a shutdown order (exit 0) stops everything.
        stopped = Supervisor(stack).run(until=lambda: stopping)
        if stopped:
            print(f"{', '.join(stopped)} exited with code 0 (asked to stop: a shutdown order, or SIGTERM); "
                  "stopping everything", file=sys.stderr)
    finally:
        stack.stop()
        print("OmniRoute stopped.", flush=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack %(message)s")
    parser = argparse.ArgumentParser(prog="python -m omniroute.devstack")
    parser.add_argument("command", choices=["run", "test", "test-deps"])
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "test-deps":
        try:
            prerequisites.ensure_test_prerequisites()
        except prerequisites.MissingPrerequisite as missing:
            raise SystemExit(f"make test cannot run yet: {missing}") from None
        return
    if args.command == "test":
        raise SystemExit(test([a for a in args.pytest_args if a != "--"]))
    run()


if __name__ == "__main__":
    main()
