"""Tests leave nothing behind in the shared Redis. Every key a stack or a fixture writes starts
with its environment name and a colon (`settings.env + ":"`, omniroute.settings), so the fixture
that made up the name removes everything under it when it ends.

A test process that never reaches its teardown (kill -9, a CI timeout) cannot do that, and some
of the product's keys have no TTL. So each made-up env is also claimed (`claim_env`): a file
named after it under ENV_LOCK_DIR, flock'ed by the process that made it up for as long as that
process lives. The next test session removes the keys of every env whose file nobody holds any
more (`remove_abandoned_envs`, called once per session by tests/conftest.py)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

import redis
import redis.asyncio

_BATCH = 500   # keys per UNLINK: one round trip for a typical test, bounded for a large one
ENV_LOCK_DIR = Path(tempfile.gettempdir()) / "omniroute-test-envs"
_claimed: dict[str, IO[bytes]] = {}   # env -> its flock'ed file, held until this process exits


def claim_env(env: str) -> None:
    """Mark `env` as used by this process until it exits (the kernel drops the lock then)."""
    ENV_LOCK_DIR.mkdir(exist_ok=True)
    # Locked under a name of its own, then renamed into place: a sweep never sees it unlocked.
    fd, temp_path = tempfile.mkstemp(dir=ENV_LOCK_DIR, prefix=".claiming-")
    lock = os.fdopen(fd, "ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.rename(temp_path, ENV_LOCK_DIR / env)
    _claimed[env] = lock


def remove_abandoned_envs(redis_url: str) -> list[str]:
    """Remove the keys of every claimed env whose process is gone; returns those envs."""
    if not ENV_LOCK_DIR.is_dir():
        return []
    abandoned = []
    for path in ENV_LOCK_DIR.iterdir():
        if path.name.startswith(".") or path.name in _claimed:
            continue
        with open(path, "ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue   # its process still runs (a parallel session)
            delete_env_keys(redis_url, path.name)
            path.unlink(missing_ok=True)
            abandoned.append(path.name)
    return abandoned


def _pattern(env: str) -> str:
    # Environment names in tests are letters, digits and '-' (tests.support.unique_name); escape
    # the glob characters anyway so that a pattern can never reach beyond its own prefix.
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in env)
    return f"{escaped}:*"


def env_keys(redis_url: str, env: str) -> list[bytes]:
    """Every key under `env:` (SCAN, never KEYS: the server stays responsive)."""
    with redis.Redis.from_url(redis_url) as client:
        return list(client.scan_iter(match=_pattern(env), count=1000))


def delete_env_keys(redis_url: str, env: str) -> int:
    """Remove every key under `env:`; returns how many there were."""
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=_pattern(env), count=1000))
        for start in range(0, len(keys), _BATCH):
            client.unlink(*keys[start:start + _BATCH])
    return len(keys)


async def delete_env_keys_async(redis_url: str, env: str) -> int:
    """`delete_env_keys` for async fixtures (no blocking call on their event loop)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=_pattern(env), count=1000)]
        for start in range(0, len(keys), _BATCH):
            await client.unlink(*keys[start:start + _BATCH])
    finally:
        await client.aclose()
    return len(keys)
