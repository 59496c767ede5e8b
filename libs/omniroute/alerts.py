"""Budget alerts: a key's (or a team's) spend crossed one of its budget's thresholds
(Budget.alert_at, e.g. 50 %, 80 %, 100 %) in the current period.

Exactly once per key (or team), period and threshold, however many accounting replicas add spend: after a
batch's spend is added, `claim` reads the key's counter and, in the same Lua script, SET NX's a
marker per threshold the spend has reached. Only the replica whose SET succeeded sends that alert
(an event on NATS `<env>.budget.alert` and the webhook). The check is on the level, not the edge:
a replica that died between adding spend and claiming leaves the claim to the next spend.

The webhook is Slack-compatible JSON (`text`) with the alert's fields beside it, retried with
exponential backoff, and signed: `X-OmniRoute-Signature: sha256=<hex HMAC-SHA256(secret,
"<timestamp>." + body)>` with the Unix time in `X-OmniRoute-Timestamp` (docs/API.md).

Delivery survives the sender: before POSTing, the claimer records the alert as pending in Redis
with a lease; success removes it. A pending alert whose lease ran out (its sender died, or gave
up while the receiver was down) is taken over by whichever replica sweeps next
(`PendingAlerts.take_due`), until its period is a day past. So a receiver gets each alert at
least once and, barring a sender dying between the receiver's 2xx and the removal, once; the
`X-OmniRoute-Alert-Id` header lets it drop a repeat.

Where it goes: the admin's settings document `budget_alerts` (PUT /api/settings/budget-alerts:
the URL, and the secret encrypted with the master key), else OMNIROUTE_BUDGET_ALERT_WEBHOOK_URL
and _SECRET.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import redis.asyncio as redis

from omniroute.secrets import Crypto
from omniroute.settings import Settings
from omniroute.shared_state.budget import NANOS_PER_USD, Budget, from_nanos, period_bounds, spend_key, team_owner

log = logging.getLogger("omniroute.alerts")

SUBJECT_SUFFIX = "budget.alert"
SIGNATURE_HEADER = "X-OmniRoute-Signature"
TIMESTAMP_HEADER = "X-OmniRoute-Timestamp"
ALERT_ID_HEADER = "X-OmniRoute-Alert-Id"  # the same on every retry: receivers may dedupe on it
_CLAIM_KEEP = timedelta(days=8)  # a claim outlives its period, so a late batch cannot re-send
SETTINGS_DOCUMENT = "budget_alerts"  # admin_settings: {"webhook_url", "secret_enc"}


def webhook_target(stored: dict[str, Any], settings: Settings) -> tuple[str, str]:
    """(URL, secret) from the admin's stored document, else from the environment; ("", "")
    when alerts go to NATS only."""
    url = str(stored.get("webhook_url") or "")
    if not url:
        return settings.budget_alert_webhook_url, settings.budget_alert_webhook_secret
    sealed = stored.get("secret_enc")
    return url, Crypto(settings.master_key).decrypt(sealed) if sealed else ""


def claim_key(env: str, key_id: str, period: str, start: datetime, share: float) -> str:
    return f"{env}:budget:alerted:{key_id}:{period}:{start:%Y%m%d}:{share:g}"


def pending_key(env: str) -> str:
    """Hash: alert id → the alert's JSON body, while its webhook delivery is not done."""
    return f"{env}:budget:alerts-pending"


def pending_due_key(env: str) -> str:
    """Sorted set: alert id scored by the epoch milliseconds its sender's lease ends at."""
    return f"{env}:budget:alerts-due"


@dataclass(frozen=True, slots=True)
class Alert:
    key_id: str             # "" for a team's budget
    key_name: str
    period: str
    period_start: datetime
    period_end: datetime
    threshold: float        # share of the limit, e.g. 0.8
    limit_usd: Decimal
    spent_usd: Decimal
    team_id: str = ""       # set (and key_id "") when the budget is a team's
    team_name: str = ""

    @property
    def owner(self) -> str:
        return team_owner(self.team_id) if self.team_id else self.key_id

    @property
    def alert_id(self) -> str:
        return f"{self.owner}:{self.period}:{self.period_start:%Y%m%d}:{self.threshold:g}"

    @property
    def text(self) -> str:
        if self.team_id:
            whose = f"Team {self.team_name} ({self.team_id})" if self.team_name else f"Team {self.team_id}"
        else:
            whose = f"API key {self.key_name} ({self.key_id})" if self.key_name else f"API key {self.key_id}"
        return (f"OmniRoute budget alert: {whose} has spent ${self.spent_usd:.2f} of its "
                f"${self.limit_usd:.2f} {self.period} budget ({self.threshold:.0%} threshold "
                f"reached; the period resets at {self.period_end:%Y-%m-%d %H:%M %Z}).")

    def as_json(self) -> dict[str, Any]:
        """The webhook body and the NATS event: Slack reads `text`, other receivers the rest."""
        body = {"text": self.text, "type": "budget.threshold", "alertId": self.alert_id,
                "keyId": self.key_id, "keyName": self.key_name, "period": self.period,
                "periodStart": self.period_start.isoformat(),
                "periodEnd": self.period_end.isoformat(), "threshold": self.threshold,
                "limitUsd": float(self.limit_usd), "spentUsd": float(self.spent_usd)}
        if self.team_id:
            body.update(scope="team", teamId=self.team_id, teamName=self.team_name)
        else:
            body["scope"] = "key"
        return body


# KEYS[1] the spend counter, KEYS[2..] one claim per threshold. ARGV[1] claim TTL, ARGV[2..] the
# thresholds in nano-dollars. Returns {spend, index of each threshold claimed now...}.
_CLAIM = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local claimed = {spent}
for i = 2, #KEYS do
  if spent >= tonumber(ARGV[i]) and redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    claimed[#claimed + 1] = i - 1
  end
end
return claimed
"""


async def claim(client: redis.Redis, env: str, key_id: str, key_name: str, budget: Budget,
                now: datetime, *, team_id: str = "", team_name: str = "") -> list[Alert]:
    """The alerts this caller must send now: thresholds reached and not claimed before. With
    `team_id` (key_id ""), the team's budget: its counter and claims are the team owner's."""
    if not budget.alert_at or budget.limit_usd <= 0:
        return []
    owner = team_owner(team_id) if team_id else key_id
    start, end = period_bounds(budget.period, now)
    limit_nanos = int(budget.limit_usd * NANOS_PER_USD)
    keys = [spend_key(env, owner, budget.period, start)]
    keys += [claim_key(env, owner, budget.period, start, share) for share in budget.alert_at]
    ttl = max(3600, int((end + _CLAIM_KEEP - now).total_seconds()))
    args = [ttl, *(int(limit_nanos * Decimal(str(share))) for share in budget.alert_at)]
    spent, *indexes = await client.eval(_CLAIM, len(keys), *keys, *args)  # type: ignore[misc]
    return [Alert(key_id="" if team_id else key_id, key_name="" if team_id else key_name,
                  period=budget.period, period_start=start, period_end=end,
                  threshold=budget.alert_at[int(index) - 1], limit_usd=budget.limit_usd,
                  spent_usd=from_nanos(int(spent)), team_id=team_id, team_name=team_name)
            for index in indexes]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "<timestamp>." + body, keyed with the shared secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookSender:
    """POSTs alerts to one URL; a failure (network, non-2xx) is retried after 1×, 2×, 4×, …
    `base_delay_s`, `attempts` times in all."""

    def __init__(self, url: str, secret: str, attempts: int = 6, base_delay_s: float = 1.0,
                 timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        self._attempts = max(attempts, 1)
        self._base_delay_s = base_delay_s
        self._timeout_s = timeout_s

    def headers(self, alert_id: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))  # fresh per attempt: receivers may bound its age
        headers = {"content-type": "application/json", TIMESTAMP_HEADER: timestamp,
                   ALERT_ID_HEADER: alert_id}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        return headers

    async def send(self, alert: dict[str, Any]) -> bool:
        """POST an alert's body (Alert.as_json). True once the receiver answered 2xx; False
        after the last attempt failed."""
        alert_id = str(alert["alertId"])
        body = json.dumps(alert, separators=(",", ":")).encode()
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            for attempt in range(self._attempts):
                try:
                    response = await client.post(self._url, content=body,
                                                 headers=self.headers(alert_id, body))
                    if response.is_success:
                        return True
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = str(exc) or type(exc).__name__
                if attempt + 1 < self._attempts:
                    delay = self._base_delay_s * 2 ** attempt
                    log.warning("budget alert %s: webhook failed (%s); retrying in %.1f s",
                                alert_id, problem, delay)
                    await asyncio.sleep(delay)
        log.error("budget alert %s: webhook failed %d times; left pending for a later sweep",
                  alert_id, self._attempts)
        return False


# Shared head: Redis's clock (replicas' clocks do not matter). KEYS[1] pending hash, KEYS[2] due
# set; ARGV[1] lease in milliseconds.
_PENDING_HEAD = """
local clock = redis.call('TIME')
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function lease(id)
  redis.call('ZADD', KEYS[2], string.format('%d', now_ms + tonumber(ARGV[1])), id)
end
"""
# ARGV[2] alert id, ARGV[3] body, ARGV[4] seconds the two keys live after the last addition.
_ADD_PENDING = _PENDING_HEAD + """
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
lease(ARGV[2])
for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return 1
"""
# ARGV[2] how many at most. Takes the alerts whose lease ended, leasing each to the caller.
_TAKE_DUE = _PENDING_HEAD + """
local taken = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, ARGV[2])) do
  local body = redis.call('HGET', KEYS[1], id)
  if body then
    lease(id)
    taken[#taken + 1] = body
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return taken
"""
_PENDING_KEEP_S = 40 * 86_400  # past any period (a month) and its day of grace


class PendingAlerts:
    """The alerts of one environment whose webhook delivery is not done yet."""

    def __init__(self, client: redis.Redis, env: str, lease_s: float = 300.0) -> None:
        self._redis = client
        self._keys = [pending_key(env), pending_due_key(env)]
        self._lease_ms = max(int(lease_s * 1000), 0)

    async def add(self, alert: dict[str, Any]) -> None:
        """Record it, leased to the caller (who is about to send it)."""
        await self._redis.eval(_ADD_PENDING, 2, *self._keys, self._lease_ms,  # type: ignore[misc]
                               str(alert["alertId"]), json.dumps(alert), _PENDING_KEEP_S)

    async def done(self, alert_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys[0], alert_id)
            pipe.zrem(self._keys[1], alert_id)
            await pipe.execute()

    async def take_due(self, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts whose lease ended, now leased to the caller."""
        taken = await self._redis.eval(_TAKE_DUE, 2, *self._keys,  # type: ignore[misc]
                                       self._lease_ms, limit)
        return [json.loads(body) for body in taken]
