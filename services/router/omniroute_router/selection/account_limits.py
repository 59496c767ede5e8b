"""The account's own limits (rpm, max concurrency) that the router enforces. What the executor
is told about the account (URL, credential, auth style, outbound proxy) is built by the shared
omniroute.targets, which the admin's provider calls use too."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from omniroute.config.snapshot import Connection
from omniroute.shared_state.ratelimit import Limits, RateLimiter


def connection_limits(connection: Connection) -> Limits:
    """`settings.rpm` and `settings.max_concurrency` of one account (0 = unlimited)."""
    def number(name: str) -> int:
        value = connection.settings.get(name)
        return value if isinstance(value, int) and value > 0 else 0
    return Limits(rpm=number("rpm"), concurrency=number("max_concurrency"))


def scope(connection: Connection) -> str:
    return f"conn:{connection.id}"


@contextlib.asynccontextmanager
async def holding(limiter: RateLimiter, connection: Connection, member: str,
                  limits: Limits) -> AsyncIterator[None]:
    """Keep the account's concurrency slot (renewed for long streams) while inside."""
    if not limits.concurrency:
        yield
        return
    async with limiter.held(scope(connection), member):
        yield
