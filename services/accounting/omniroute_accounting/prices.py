"""The price book and the provider id → provider type map, in memory, refreshed on
config.changed and periodically (prices are edited in admin; accounting prices every event)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from psycopg_pool import AsyncConnectionPool

from omniroute.config.watcher import changed_subject
from omniroute.outages import STORE_OUTAGES, describe
from omniroute.settings import Settings
from omniroute.store import config_repo, pricing_repo
from omniroute.store.pricing import PriceBook

log = logging.getLogger("omniroute.accounting.prices")


@dataclass(frozen=True, slots=True)
class PriceView:
    book: PriceBook = field(default_factory=PriceBook)
    provider_types: dict[str, str] = field(default_factory=dict)

    def provider_type(self, provider_id: str) -> str:
        # A provider id that is not configured (any more) may still be a type name ("openai").
        return self.provider_types.get(provider_id, provider_id)


class PriceSource:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self.current = PriceView()
        self._task: asyncio.Task[None] | None = None

    async def start(self, nats_client: Client | None = None, *, seed: bool = True) -> None:
        if seed:
            async with self._pool.connection() as conn:
                changed = await pricing_repo.seed(conn)
            if changed:
                log.info("seeded %d list prices", changed)
        await self.reload()
        if nats_client is not None:
            await nats_client.subscribe(changed_subject(self._settings), cb=self._on_changed)
        self._task = asyncio.create_task(self._refresh_periodically())

    async def reload(self) -> None:
        try:
            async with self._pool.connection() as conn:
                book = await pricing_repo.load_book(conn)
                types = await config_repo.provider_types(conn)
            self.current = PriceView(book=book, provider_types=types)
        except STORE_OUTAGES as exc:  # keep pricing with the last good book; Postgres is away
            log.warning("reloading prices failed, Postgres is unreachable (%s); keeping the previous "
                        "ones", describe(exc))
        except Exception:
            log.exception("reloading prices failed; keeping the previous ones")

    async def _on_changed(self, _msg: Msg) -> None:
        await self.reload()

    async def _refresh_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._settings.config_refresh_s)
            await self.reload()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

