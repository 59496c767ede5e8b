"""Closing a NATS client at shutdown without hanging.

`Client.drain()` waits until every subscription's queue is empty. A JetStream pull
subscription whose last fetch timed out receives the server's late reply after its consumer
loop stopped; nobody takes it off the queue and drain() waits forever, so SIGTERM would never
end the process. Consumers need no drain: each batch was acked when it committed, so a flush
(the acks reach the server) and a close lose nothing; anything unacked is redelivered.
"""

from __future__ import annotations

import contextlib
import logging

from nats.aio.client import Client

log = logging.getLogger("omniroute.bus")


async def close_nats(client: Client, timeout_s: int = 5) -> None:
    if client.is_closed:
        return
    try:
        await client.flush(timeout=max(1, timeout_s))
    except Exception as exc:  # NATS away at shutdown: nothing more to send
        log.warning("NATS flush at shutdown failed (%s); closing", type(exc).__name__)
    with contextlib.suppress(Exception):
        await client.close()
