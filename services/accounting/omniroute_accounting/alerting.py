"""Budget threshold alerts, checked by accounting right after it added a batch's spend (see
omniroute.alerts for the once-only claim, the webhook and its pending record). A failure here
never fails the batch: its rows are committed, and the next spend of the key claims what was
missed. `run` sweeps pending deliveries whose sender died or gave up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as redis
from nats.aio.client import Client as NATS
from psycopg_pool import AsyncConnectionPool

from omniroute import alerts
from omniroute.settings import Settings
from omniroute.shared_state.budget import Budget
from omniroute.store import admin_settings_repo, budget_repo, teams_repo

log = logging.getLogger("omniroute.accounting")
_GRACE = timedelta(days=1)  # a pending alert is retried until its period is this far past


class BudgetAlerts:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool, client: redis.Redis,
                 nats_client: NATS | None, lease_s: float = 300.0) -> None:
        self._settings = settings
        self._pool = pool
        self._redis = client
        self._nats = nats_client
        # Longer than a sender's whole retry schedule, so a live sender is never doubled.
        self._pending = alerts.PendingAlerts(client, settings.env, lease_s)
        self._deliveries: set[asyncio.Task[bool]] = set()

    async def check(self, key_ids: Iterable[str], now: datetime | None = None, *,
                    team_ids: Iterable[str] = ()) -> list[alerts.Alert]:
        """Claim and send the thresholds these keys' (and teams') spend has reached; returns
        those sent."""
        ids, teams = sorted(set(key_ids)), sorted(set(team_ids))
        if not ids and not teams:
            return []
        try:
            claimed = await self._claim(ids, teams, now or datetime.now(UTC))
        except Exception as exc:
            log.warning("budget alert check failed (%s); the next spend retries it", exc)
            return []
        webhook = await self._webhook() if claimed else None
        for alert in claimed:
            await self._send(alert, webhook)
        return claimed

    async def _webhook(self) -> alerts.WebhookSender | None:
        """Read when an alert is due (rare), so the admin's latest settings apply."""
        try:
            async with self._pool.connection() as conn:
                stored = await admin_settings_repo.load(conn, alerts.SETTINGS_DOCUMENT)
            url, secret = alerts.webhook_target(stored, self._settings)
        except Exception as exc:  # the event still goes out on NATS
            log.error("budget alert webhook settings unreadable: %s", exc)
            return None
        return alerts.WebhookSender(url, secret, base_delay_s=self._settings.budget_alert_retry_s) \
            if url else None

    async def _claim(self, key_ids: list[str], team_ids: list[str], now: datetime) -> list[alerts.Alert]:
        async with self._pool.connection() as conn:
            rows = await budget_repo.budgets_of(conn, key_ids) if key_ids else []
            teams = await teams_repo.list_teams(conn, team_ids) if team_ids else []
        claimed: list[alerts.Alert] = []
        for row in rows:
            budget = Budget.parse(row["budget"])
            if budget is not None:
                claimed += await alerts.claim(self._redis, self._settings.env, row["keyId"],
                                              row["name"] or "", budget, now)
        for team in teams:
            budget = Budget.parse(team["budget"])
            if budget is not None:
                claimed += await alerts.claim(self._redis, self._settings.env, "", "", budget, now,
                                              team_id=team["id"], team_name=team["name"] or "")
        return claimed

    async def _send(self, alert: alerts.Alert, webhook: alerts.WebhookSender | None) -> None:
        log.info("%s", alert.text)
        body = alert.as_json()
        if self._nats is not None:
            try:
                await self._nats.publish(self._settings.subject(alerts.SUBJECT_SUFFIX),
                                         json.dumps(body).encode())
            except Exception as exc:
                log.error("budget alert %s: NATS publish failed: %s", alert.alert_id, exc)
        if webhook is not None:
            try:
                await self._pending.add(body)
            except Exception as exc:  # sent anyway, only without a second chance
                log.error("budget alert %s: not recorded as pending: %s", alert.alert_id, exc)
            self._deliver(webhook, body)

    def _deliver(self, webhook: alerts.WebhookSender, body: dict[str, Any]) -> None:
        """POST in the background (retries take a while: they must not hold up the consumer's
        batches); a delivered alert stops being pending."""
        async def deliver() -> bool:
            delivered = await webhook.send(body)
            if delivered:
                try:
                    await self._pending.done(str(body["alertId"]))
                except Exception as exc:  # a later sweep sends it again (same alert id)
                    log.warning("budget alert %s: still marked pending: %s", body["alertId"], exc)
            return delivered

        task = asyncio.create_task(deliver())
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def resend_due(self, now: datetime | None = None) -> int:
        """Take over pending alerts whose lease ended; returns how many are being sent again."""
        webhook = await self._webhook()
        if webhook is None:
            return 0
        now = now or datetime.now(UTC)
        resent = 0
        for body in await self._pending.take_due():
            if datetime.fromisoformat(body["periodEnd"]) + _GRACE < now:
                await self._pending.done(str(body["alertId"]))  # too late to matter
                continue
            self._deliver(webhook, body)
            resent += 1
        return resent

    async def run(self, stop: asyncio.Event, interval_s: float = 30.0) -> None:
        """Sweep pending deliveries until `stop` (next to the service's other tasks)."""
        while not stop.is_set():
            try:
                await self.resend_due()
            except Exception as exc:  # Redis or Postgres away: the next sweep tries again
                log.warning("budget alert sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Give webhook deliveries in flight a moment to finish (at shutdown, and in tests)."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=timeout_s)
