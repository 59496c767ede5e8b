"""One batch of usage events → priced rows in Postgres, spend in Redis, metrics — each once.

Order inside the handler, and why:
1. price every event (cost is computed here once and stored with the row);
2. in one transaction: INSERT … RETURNING the request ids that are new, add those costs to the
   Redis spend counters (the key's and its team's) and drop the router's holds of those requests
   (the key's and the team's) in the same script
   (marker-guarded, see omniroute.shared_state.budget), COMMIT;
3. drop the markers and record metrics for the new rows only;
4. claim and send the budget alerts whose thresholds the added spend reached (alerting.py).
The consumer acks after the handler returns, so an exception at any step means redelivery,
and steps 2 and 3 make a redelivery add nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

import redis.asyncio as redis
from nats.aio.msg import Msg
from psycopg_pool import AsyncConnectionPool

from omniroute import telemetry
from omniroute.settings import Settings
from omniroute.shared_state import budget
from omniroute.store import usage_repo
from omniroute.store.pricing import DefaultPrice, Units, default_price, to_nanos
from omniroute.telemetry.metrics import UsageMetrics
from omniroute.v1 import events_pb2
from omniroute_accounting.alerting import BudgetAlerts
from omniroute_accounting.prices import PriceView

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


def price(event: events_pb2.UsageEvent, view: PriceView, default: DefaultPrice) -> tuple[Decimal, bool]:
    """(USD, priced) for one event, at the configured default price when its model has none
    (priced False). A cache hit cost nothing upstream."""
    if event.cache_hit:
        return Decimal(0), True
    cost, known = view.book.charge(view.provider_type(event.provider), event.model,
                                   Units.of(event.usage), default)
    return cost, known or event.status >= 400  # a refused request is not an unpriced model


class Recorder:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, client: redis.Redis,
                 prices: Callable[[], PriceView], metrics: UsageMetrics | None = None,
                 alerts: BudgetAlerts | None = None) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = client
        self._prices = prices
        self._metrics = metrics or UsageMetrics.create()
        self._alerts = alerts
        # Set when Redis missed spend; maintenance then rebuilds the counters from Postgres.
        self.rebuild_wanted = asyncio.Event()
        self._unpriced_seen: set[tuple[str, str]] = set()
        self._default_price = default_price(settings)

    async def handle(self, messages: list[Msg]) -> None:
        # One span per batch, linked to each request's trace (context from the NATS headers).
        with _tracer.start_as_current_span("accounting.record_batch",
                                           links=telemetry.links_from_messages(messages)) as span:
            span.set_attribute("messaging.batch.message_count", len(messages))
            events = decode(messages)
            if events:
                inserted = await self.record(events)
                span.set_attribute("omniroute.rows_inserted", inserted)

    async def record(self, events: list[events_pb2.UsageEvent]) -> int:
        view = self._prices()
        priced = {event.request_id: price(event, view, self._default_price) for event in events}
        costs = {rid: cost for rid, (cost, _) in priced.items()}
        unpriced = {rid for rid, (_, known) in priced.items() if not known}
        self._warn_unpriced(events, unpriced)
        async with self._pool.connection() as conn, conn.transaction():
            new_ids = await usage_repo.insert_usage_rows(conn, events, costs)
            counted = await self._add_spend(events, new_ids, costs)
        if counted:
            try:
                await budget.forget_counted(self._redis, self._settings.env, counted)
            except Exception as exc:  # the markers expire on their own
                log.warning("could not drop spend markers: %s", exc)
        if counted and self._alerts is not None:
            counted_ids = set(counted)
            paid = [event for event in events
                    if event.request_id in counted_ids and costs[event.request_id] > 0]
            await self._alerts.check((event.key_id for event in paid),
                                     team_ids=(event.team_id for event in paid if event.team_id))
        inserted = len(new_ids)
        for event in events:
            if event.request_id in new_ids:
                new_ids.discard(event.request_id)  # a batch may carry one request twice
                self._metrics.record(event, costs[event.request_id],
                                     unpriced=event.request_id in unpriced)
        log.debug("recorded %d usage events (%d new rows)", len(events), inserted)
        return inserted

    def _warn_unpriced(self, events: list[events_pb2.UsageEvent], unpriced: set[str]) -> None:
        for event in events:
            model = (event.provider, event.model)
            if event.request_id in unpriced and model not in self._unpriced_seen:
                if len(self._unpriced_seen) < 10_000:
                    self._unpriced_seen.add(model)
                log.warning("no price for %s/%s: its usage is charged the default price "
                            "(OMNIROUTE_DEFAULT_PRICE_*; set one with PUT /api/pricing)",
                            *model)

    async def _add_spend(self, events: list[events_pb2.UsageEvent], new_ids: set[str],
                         costs: dict[str, Decimal]) -> list[str]:
        """Before the commit (see omniroute.shared_state.budget). Redis being away must not stop usage
        rows from being written: the spend is then rebuilt from Postgres when Redis is back."""
        spends = [budget.Spend(request_id=event.request_id, key_id=event.key_id,
                               nanos=to_nanos(costs[event.request_id]),
                               at=usage_repo.started_at(event), team_id=event.team_id)
                  for event in {e.request_id: e for e in events}.values()
                  if event.request_id in new_ids]
        # A free request goes too: its hold (the router's reservation) is dropped with it.
        spends = [spend for spend in spends if spend.key_id]
        if not spends:
            return []
        try:
            await budget.record_spend(self._redis, self._settings.env, spends)
        except Exception as exc:
            log.error("Redis spend update failed (%s); counters will be rebuilt from Postgres", exc)
            self.rebuild_wanted.set()
            return []
        return [spend.request_id for spend in spends]
