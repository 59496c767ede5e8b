"""Idempotency-Key / X-Request-Id: within the window a repeat gets the first answer; a repeat that
arrives while the first is still running waits for it — whichever replica either lands on."""

from __future__ import annotations

import hashlib

import redis.asyncio as redis

from omniroute.limits.flight import Flights, Outcome


class Idempotency:
    def __init__(self, client: redis.Redis, env: str) -> None:
        self.flights = Flights(client, f"{env}:idem:")

    @staticmethod
    def scope(key_id: str, idempotency_key: str, variant: str) -> str:
        """Scoped by API key (two callers never share answers) and by the answer's shape
        (`variant`: client format and stream flag), hashed to bound the key length."""
        raw = f"{key_id}\x00{idempotency_key}\x00{variant}".encode()
        return hashlib.sha256(raw).hexdigest()

    async def begin(self, scope: str, request_id: str, *, lease_s: float, wait_s: float) -> Outcome:
        return await self.flights.begin(scope, request_id, lease_s=lease_s, wait_s=wait_s)

    async def finish(self, scope: str, request_id: str, answer: bytes | None, window_s: float) -> None:
        await self.flights.finish(scope, request_id, answer, window_s)

    async def active_keys(self) -> int:
        return await self.flights.count()
