"""Each server's catalog (tools, resources, resource templates, prompts) as the MCP executor
listed it, kept briefly in this router's memory: a client's tools/list does not reach every
upstream server each time. An entry lives `TTL_S` and dies with the snapshot it was listed
under (config.changed: a server's URL or credentials may have changed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from omniroute.config.snapshot import ConfigSnapshot

TTL_S = 30.0

Items = list[dict[str, Any]]
Lister = Callable[[], Awaitable[Items]]


@dataclass(slots=True)
class _Entry:
    snapshot: ConfigSnapshot
    expires: float
    items: Items


class CatalogCache:
    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def get(self, snapshot: ConfigSnapshot, server_id: str, kind: int, lister: Lister) -> Items:
        """The cached list, or `lister()`'s (one listing at a time per server and kind; a
        failure is not cached)."""
        key = (server_id, kind)
        entry = self._fresh(key, snapshot)
        if entry is not None:
            return entry.items
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key, snapshot)
            if entry is not None:
                return entry.items
            items = await lister()
            self._entries[key] = _Entry(snapshot, self._clock() + self._ttl_s, items)
            return items

    def peek(self, snapshot: ConfigSnapshot, server_id: str, kind: int) -> Items | None:
        entry = self._fresh((server_id, kind), snapshot)
        return entry.items if entry is not None else None

    def _fresh(self, key: tuple[str, int], snapshot: ConfigSnapshot) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or entry.snapshot is not snapshot or entry.expires <= self._clock():
            return None
        return entry
