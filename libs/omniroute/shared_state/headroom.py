"""Per-connection rate-limit headroom learned from the provider's own response headers.

Providers say how much of their limit is left on every answer (OpenAI `x-ratelimit-remaining-*`
with `x-ratelimit-reset-*` durations, Anthropic `anthropic-ratelimit-*-remaining` with RFC 3339
reset times, and `retry-after`). When a count reaches zero, the next request on that account
would get a 429: the router marks the connection (for that model — OpenAI and Anthropic limit
each model separately) as out of headroom until the provider's reset, and account selection
skips it meanwhile. The mark lives in Redis, so every router replica skips it.

`FORWARDED` is the one list of header names the executor forwards to the router."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from omniroute.shared_state import NOW_MS, queue_script, text
from omniroute.shared_state.health_keys import HealthKeys

# (remaining header, reset header) per limited dimension.
_DIMENSIONS: tuple[tuple[str, str, str], ...] = (
    ("requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("requests", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("tokens", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
    ("input tokens", "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("output tokens", "anthropic-ratelimit-output-tokens-remaining",
     "anthropic-ratelimit-output-tokens-reset"),
)
FORWARDED: frozenset[str] = frozenset(
    {"retry-after", *(name for _, remaining, reset in _DIMENSIONS for name in (remaining, reset))})

# When a count is exhausted but the provider gave no reset time: wait this long (the provider's
# windows are usually a minute; a short wait that is wrong costs one 429, which cools down).
DEFAULT_WAIT_S = 1.0
MAX_WAIT_S = 3600.0  # a garbled reset header must not park an account for days

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def pick(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The forwarded subset of an upstream response's headers (names lower-cased)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): value for name, value in items if name.lower() in FORWARDED}


def reset_seconds(value: str, now: float | None = None) -> float | None:
    """A reset header as seconds from now: a plain number of seconds, an OpenAI duration
    ("1s", "6m0s", "20ms", "1h2m3.5s") or an RFC 3339 time (Anthropic). None when unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, at.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Exhausted:
    wait_s: float
    reason: str


def exhausted(headers: Mapping[str, str], now: float | None = None) -> Exhausted | None:
    """Whether these headers say the account has no headroom left, and for how long."""
    longest: Exhausted | None = None
    for dimension, remaining_name, reset_name in _DIMENSIONS:
        raw = headers.get(remaining_name)
        if raw is None:
            continue
        try:
            remaining = float(raw)
        except ValueError:
            continue
        if remaining > 0:
            continue
        wait = reset_seconds(headers.get(reset_name, ""), now)
        if wait is None:
            wait = reset_seconds(headers.get("retry-after", ""), now)
        wait = min(MAX_WAIT_S, wait if wait is not None else DEFAULT_WAIT_S)
        if longest is None or wait > longest.wait_s:
            longest = Exhausted(wait, f"no {dimension} left at the provider")
    return longest


# Extend a mark, never shorten it (a stale answer arriving late must not cut a longer wait).
_MARK = NOW_MS + """
local till = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if till > current then
  redis.call('HSET', KEYS[1], 'until', till, 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
"""

_VIEW = NOW_MS + """
local out = {}
for i = 1, #KEYS do
  local st = redis.call('HMGET', KEYS[i], 'until', 'reason')
  table.insert(out, math.max(0, (tonumber(st[1]) or 0) - now))
  table.insert(out, st[2] or '')
end
return out
"""


@dataclass(frozen=True, slots=True)
class NoHeadroom:
    remaining_s: float
    reason: str


class Headroom:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self._keys = HealthKeys(env)
        self._mark = client.register_script(_MARK)
        self._view = client.register_script(_VIEW)

    def _key(self, connection_id: str, model: str) -> str:
        return self._keys.headroom(connection_id, model)

    async def mark(self, connection_id: str, model: str, found: Exhausted) -> None:
        await self._mark(keys=[self._key(connection_id, model)],
                         args=[max(1, int(found.wait_s * 1000)), found.reason])

    async def view(self, connection_ids: list[str], model: str) -> dict[str, NoHeadroom]:
        """The connections (of these) that have no headroom for `model` now."""
        if not connection_ids:
            return {}
        return self.parse_view(await self._view(keys=[self._key(c, model) for c in connection_ids]),
                               connection_ids)

    def queue_view(self, pipe: Any, connection_ids: list[str], model: str) -> AsyncScript:
        """The view's command on a pipeline (batched with others); returns the script it uses."""
        queue_script(pipe, self._view, [self._key(c, model) for c in connection_ids])
        return self._view

    def parse_view(self, raw: list[Any], connection_ids: list[str]) -> dict[str, NoHeadroom]:
        out = {}
        for i, connection_id in enumerate(connection_ids):
            remaining_ms = int(raw[i * 2])
            if remaining_ms > 0:
                out[connection_id] = NoHeadroom(remaining_ms / 1000, text(raw[i * 2 + 1]))
        return out
