"""Rate-limit headroom learned from the provider: the executor forwards the provider's
rate-limit headers (omniroute.shared_state.headroom.FORWARDED) on the answer's start or its error;
here they are read, a connection without headroom is marked until the provider's reset, and
the headers are removed so that the caller sees the gateway's own x-ratelimit-* (its key's
limits), never the provider account's."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

import redis.asyncio as redis

from omniroute.config.snapshot import Connection
from omniroute.shared_state.headroom import FORWARDED, Headroom, exhausted

log = logging.getLogger("omniroute.router")


async def learn(headroom: Headroom, connection: Connection, model: str,
                headers: MutableMapping[str, str]) -> None:
    seen = {name: headers[name] for name in FORWARDED if name in headers}
    if not seen:
        return
    for name in seen:
        del headers[name]
    found = exhausted(seen)
    if found is None:
        return
    log.info("connection %s (%s): %s; skipped for %.1fs", connection.id, model, found.reason, found.wait_s)
    try:
        await headroom.mark(connection.id, model, found)
    except redis.RedisError as exc:  # learning is an optimisation; the answer must go on
        log.warning("could not record headroom for connection %s: %s", connection.id, exc)
