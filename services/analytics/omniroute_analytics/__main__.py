"""Analytics process: `python -m omniroute_analytics` — usage events → latency windows and
active sessions in Redis.

Every replica of every service can then answer latency percentiles from the same data
(`omniroute.analytics_store`), rather than from one process's memory."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from omniroute import analytics_store, control, health, runtime, settings, shared_state, telemetry
from omniroute.bus.connection import connect, ensure_stream
from omniroute.bus.consumer import consume
from omniroute.bus.shutdown import close_nats
from omniroute.telemetry import gauges, metrics
from omniroute.v1 import events_pb2

log = logging.getLogger("omniroute.analytics")


async def main() -> None:
    config = settings.load()
    telemetry.setup("omniroute-analytics")
    stop = runtime.stop_event()
    nats_client = await connect(config.nats_url, name="omniroute-analytics")
    await control.listen(nats_client, config, "analytics")  # admin's restart / shutdown orders
    await ensure_stream(nats_client, config)
    redis_client = shared_state.connect(config)
    store = analytics_store.LatencyStore(redis_client, config.env)
    sessions = analytics_store.SessionStore(redis_client, config.env)

    async def handle(messages: list[Msg]) -> None:
        events = []
        for message in messages:
            event = events_pb2.UsageEvent()
            try:
                event.ParseFromString(message.data)
            except Exception:
                log.error("dropping an undecodable usage event")
                continue
            events.append(event)
        await store.record(events)
        await sessions.record(events)

    server = health.health_server(config.bind_host, config.analytics_port, lambda: True)
    # Gauges read over the network (see omniroute.telemetry.gauges): this consumer's lag, and
    # the breaker of every connection. Analytics polls the breakers because it already reads
    # Redis off the request path and runs few replicas; a router would add the scan per pod.
    meter = metrics.meter("omniroute.analytics")
    lag = gauges.consumer_lag(meter, nats_client.jetstream(), config, "analytics")
    breakers = gauges.breaker_states(meter, redis_client, config.env)
    try:
        await asyncio.gather(
            lag.run(stop), breakers.run(stop),
            consume(nats_client, config, durable="analytics", subject_suffix="usage.>",
                    handle=handle, stop=stop),
            health.run_until(server, stop))
    finally:
        await close_nats(nats_client)
        await redis_client.aclose()
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("analytics")
    runtime.run(main)
