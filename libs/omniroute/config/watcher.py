"""Keeps a process's ConfigSnapshot fresh: reload on config.changed (core NATS), and
periodically as a safety net for a missed announcement."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg

from omniroute.config.snapshot import ConfigSnapshot, load_snapshot
from omniroute.outages import STORE_OUTAGES, describe
from omniroute.secrets import Crypto
from omniroute.settings import Settings

log = logging.getLogger("omniroute.config")


def changed_subject(settings: Settings) -> str:
    return settings.subject("config.changed")


class SnapshotHolder:
    """`holder.current` is what the hot path reads: a plain attribute, swapped atomically."""

    def __init__(self, settings: Settings, *, decrypt: bool) -> None:
        self._settings = settings
        self._crypto = Crypto(settings.master_key) if decrypt else None
        self.current = ConfigSnapshot()
        self._reload_lock = asyncio.Lock()
        self._again = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, nats_client: Client) -> None:
        # Subscribe before the first load: a change announced while it runs then triggers one
        # more reload, instead of being missed until the periodic refresh.
        await nats_client.subscribe(changed_subject(self._settings), cb=self._on_changed)
        await nats_client.flush()
        await self.reload()
        self._tasks.append(asyncio.create_task(self._refresh_periodically()))

    async def reload(self) -> None:
        # Coalesce bursts: while one reload runs, further requests make just one more.
        if self._reload_lock.locked():
            self._again = True
            return
        async with self._reload_lock:
            while True:
                self._again = False
                try:
                    self.current = await load_snapshot(self._settings.database_url, self._crypto)
                except STORE_OUTAGES as exc:   # Postgres away: serve the last good snapshot
                    log.warning("config reload failed, Postgres is unreachable (%s); keeping the "
                                "previous snapshot", describe(exc))
                except Exception:
                    log.exception("config reload failed; keeping the previous snapshot")
                if not self._again:
                    return

    async def _on_changed(self, _msg: Msg) -> None:
        await self.reload()

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._settings.config_refresh_s)
            await self.reload()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
