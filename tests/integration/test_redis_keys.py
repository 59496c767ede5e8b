"""A test process killed before its teardown leaves its env's Redis keys behind only until the
next session starts: tests.redis_keys removes the keys of envs whose process is gone, and never
those of an env whose process still runs (a parallel session)."""

from __future__ import annotations

import subprocess
import sys

import redis

from tests.redis_keys import ENV_LOCK_DIR, env_keys, remove_abandoned_envs
from tests.support import REDIS_URL, unique_name

# Claims the env, writes a key with no TTL (as the router's `lastused` is), says so, then sleeps
# until it is killed: it never reaches a teardown.
WRITER = """
import sys, time, redis
from tests.redis_keys import claim_env
env = sys.argv[1]
claim_env(env)
redis.Redis.from_url(sys.argv[2]).set(f"{env}:lastused", "1")
print("written", flush=True)
time.sleep(600)
"""


def test_keys_of_a_killed_test_process_are_removed_by_the_next_sweep_only() -> None:
    env = unique_name("swept")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, env, REDIS_URL], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
        assert env not in remove_abandoned_envs(REDIS_URL)          # its process still runs
        assert env_keys(REDIS_URL, env) == [f"{env}:lastused".encode()]
    finally:
        writer.kill()   # as a CI timeout would: no teardown
        writer.wait(10)
    with redis.Redis.from_url(REDIS_URL) as client:
        assert client.ttl(f"{env}:lastused") == -1                  # nothing else would remove it
    assert env in remove_abandoned_envs(REDIS_URL)
    assert env_keys(REDIS_URL, env) == []
    assert not (ENV_LOCK_DIR / env).exists()
