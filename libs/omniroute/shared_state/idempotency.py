"""Idempotency-Key / X-Request-Id: within the window a repeat gets the first answer; a repeat that
arrives while the first is still running waits for it — whichever replica either lands on.

A key is bound to the request that first used it (its fingerprint, kept beside the answer): the
same key with another request (body, model, stream flag …) is refused (`KeyReused`), never
answered with the first request's answer."""

from __future__ import annotations

import hashlib

import redis.asyncio as redis

from omniroute.shared_state.flight import Flights, Outcome

# Binds the key to a fingerprint unless it is bound to another one; refreshes its expiry.
_BIND = """
local bound = redis.call('GET', KEYS[1])
if bound and bound ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
"""


class KeyReused(Exception):
    """The idempotency key was used for another request within the window."""


class Idempotency:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self.flights = Flights(client, f"{env}:idem:")
        self._bind = client.register_script(_BIND)

    @staticmethod
    def scope(key_id: str, idempotency_key: str) -> str:
        """Scoped by API key (two callers never share answers), hashed to bound the key length."""
        return hashlib.sha256(f"{key_id}\x00{idempotency_key}".encode()).hexdigest()

    def _bound(self, scope: str) -> str:
        return f"{self.flights.prefix}{scope}:f"

    async def begin(self, scope: str, fingerprint: str, request_id: str, *, lease_s: float,
                    window_s: float) -> Outcome:
        """The first answer, or ownership (waits up to the lease while another request with this
        key runs); raises KeyReused when the key belongs to another request."""
        hold_ms = int((lease_s + window_s) * 1000)  # the first request's run, then its window
        if not await self._bind(keys=[self._bound(scope)], args=[fingerprint, hold_ms]):
            raise KeyReused(scope)
        return await self.flights.begin(scope, request_id, lease_s=lease_s, wait_s=lease_s)

    async def finish(self, scope: str, fingerprint: str, request_id: str, answer: bytes | None,
                     window_s: float) -> None:
        await self.flights.finish(scope, request_id, answer, window_s)
        # The key stays this request's for the window from its end, answered or failed.
        await self._bind(keys=[self._bound(scope)], args=[fingerprint, max(1, int(window_s * 1000))])

    async def active_keys(self) -> int:
        return await self.flights.count()
