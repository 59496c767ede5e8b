"""Accounting process: `python -m omniroute_accounting` — usage events → Postgres rows."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from omniroute import health, runtime, settings, telemetry
from omniroute.bus.connection import connect, ensure_stream
from omniroute.bus.consumer import consume
from omniroute.store.usage_repo import insert_usage
from omniroute.v1 import events_pb2
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("omniroute.accounting")
_tracer = telemetry.tracer("omniroute.accounting")


def decode(messages: list[Msg]) -> list[events_pb2.UsageEvent]:
    events = []
    for message in messages:
        event = events_pb2.UsageEvent()
        try:
            event.ParseFromString(message.data)
        except Exception:  # protobuf raises DecodeError; a poison message must not block the rest
            log.error("dropping an undecodable usage event (%d bytes)", len(message.data))
            continue
        if event.request_id:
            events.append(event)
    return events


async def main() -> None:
    config = settings.load()
    telemetry.setup("omniroute-accounting")
    stop = runtime.stop_event()
    nats_client = await connect(config.nats_url, name="omniroute-accounting")
    await ensure_stream(nats_client, config)
    pool = AsyncConnectionPool(config.database_url, min_size=1, max_size=4, open=False)
    await pool.open()

    async def handle(messages: list[Msg]) -> None:
        events = decode(messages)
        # One span per batch, linked to each request's trace (context from the NATS headers).
        with _tracer.start_as_current_span("accounting.record_batch",
                                           links=telemetry.links_from_messages(messages)) as span:
            span.set_attribute("messaging.batch.message_count", len(messages))
            if not events:
                return
            async with pool.connection() as conn:
                inserted = await insert_usage(conn, events)
            log.debug("recorded %d usage rows (%d new)", len(events), inserted)

    server = health.health_server(config.bind_host, config.accounting_port, lambda: not pool.closed)
    try:
        await asyncio.gather(
            consume(nats_client, config, durable="accounting", subject_suffix="usage.>",
                    handle=handle, stop=stop),
            health.run_until(server, stop))
    finally:
        await pool.close()
        await nats_client.drain()
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("accounting")
    runtime.run(main)
