"""Accounting process: `python -m omniroute_accounting` — usage events → priced Postgres rows,
Redis spend counters, usage metrics. Any number of replicas share the durable consumer."""

from __future__ import annotations

import asyncio
import logging

from psycopg_pool import AsyncConnectionPool

from omniroute import control, health, runtime, settings, shared_state, telemetry
from omniroute.bus.connection import connect, ensure_stream
from omniroute.bus.consumer import consume
from omniroute.bus.shutdown import close_nats
from omniroute.telemetry import gauges, metrics
from omniroute_accounting import maintenance, mcp_calls, refusals
from omniroute_accounting.alerting import BudgetAlerts
from omniroute_accounting.prices import PriceSource
from omniroute_accounting.recorder import Recorder

log = logging.getLogger("omniroute.accounting")


async def main() -> None:
    config = settings.load()
    telemetry.setup("omniroute-accounting")
    stop = runtime.stop_event()
    nats_client = await connect(config.nats_url, name="omniroute-accounting")
    await control.listen(nats_client, config, "accounting")  # admin's restart / shutdown orders
    await ensure_stream(nats_client, config)
    pool = AsyncConnectionPool(config.database_url, min_size=1, max_size=4, open=False)
    await pool.open()
    redis_client = shared_state.connect(config)
    prices = PriceSource(pool, config)
    await prices.start(nats_client)
    alerts = BudgetAlerts(config, pool, redis_client, nats_client)
    recorder = Recorder(config, pool, redis_client, lambda: prices.current, alerts=alerts)
    # Postgres is the truth: bring the counters up to it before counting anything new.
    try:
        await maintenance.rebuild_spend(config, pool, redis_client)
    except Exception as exc:
        log.warning("spend rebuild at start failed (%s); maintenance retries it", exc)
        recorder.rebuild_wanted.set()

    server = health.health_server(config.bind_host, config.accounting_port, lambda: not pool.closed)
    # Gauges read over the network (see omniroute.telemetry.gauges): this consumer's lag, and
    # each key's budget against its spend (accounting keeps those counters).
    meter = metrics.meter("omniroute.accounting")
    lag = gauges.consumer_lag(meter, nats_client.jetstream(), config, "accounting")
    budgets = gauges.budget_levels(meter, pool, redis_client, config.env)
    try:
        await asyncio.gather(
            lag.run(stop), budgets.run(stop), alerts.run(stop),
            consume(nats_client, config, durable="accounting", subject_suffix="usage.>",
                    handle=recorder.handle, stop=stop),
            # Gateway refusals (edge and router) → audit_log rows.
            consume(nats_client, config, durable=refusals.DURABLE, subject_suffix=refusals.SUBJECTS,
                    handle=refusals.RefusalRecorder(pool).handle, stop=stop),
            # MCP gateway calls → mcp_calls rows (priced per call) and their audit_log rows.
            consume(nats_client, config, durable=mcp_calls.DURABLE, subject_suffix=mcp_calls.SUBJECTS,
                    handle=mcp_calls.McpCallRecorder(pool).handle, stop=stop),
            maintenance.run(config, pool, redis_client, stop, recorder.rebuild_wanted),
            health.run_until(server, stop))
    finally:
        await alerts.drain()
        await prices.stop()
        await pool.close()
        await redis_client.aclose()
        await close_nats(nats_client)
        telemetry.shutdown()


if __name__ == "__main__":
    runtime.setup_logging("accounting")
    runtime.run(main)
