"""What the admin process holds: the pool, NATS, Redis, the crypto for credentials."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client
from psycopg_pool import AsyncConnectionPool

from omniroute.config.watcher import changed_subject
from omniroute.secrets import Crypto
from omniroute.settings import Settings
from omniroute.v1 import events_pb2


@dataclass
class AdminState:
    settings: Settings
    pool: AsyncConnectionPool
    nats: Client
    redis: redis.Redis
    crypto: Crypto

    async def announce(self, what: str) -> None:
        """Tell every edge and router to reload its snapshot (core NATS: fire and forget; the
        periodic refresh covers a missed message)."""
        at = Timestamp()
        at.GetCurrentTime()
        await self.nats.publish(changed_subject(self.settings),
                                events_pb2.ConfigChanged(what=what, at=at).SerializeToString())
        await self.nats.flush()
