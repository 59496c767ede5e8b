"""Access tokens of OAuth connections, refreshed before they expire and once after a 401.

Every router replica may find a token stale at the same moment; a Redis lock (SET NX PX) lets
exactly one of them call the token endpoint while the others wait for its result in Redis. The
refresh goes through an executor (routers have no internet egress). A refresh the provider
refuses marks the connection `refresh_failed` (Redis and Postgres, visible in the admin API)
and the connection is skipped until someone authorizes it again."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
import psycopg
import redis.asyncio as redis

from omniroute import oauth, settings, telemetry
from omniroute.config.snapshot import Connection
from omniroute.executor_pool import ExecutorPool
from omniroute.secrets import Crypto
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, executor_pb2

log = logging.getLogger("omniroute.router")
LOCK_MS = 15_000
WAIT_STEP_S = 0.05
STATE_TTL_S = 30 * 86400


@dataclass(frozen=True, slots=True)
class Token:
    value: str = ""
    error: str = ""


def is_oauth(connection: Connection) -> bool:
    return isinstance(connection.settings.get("oauth"), dict)


class OAuthTokens:
    def __init__(self, client: redis.Redis, pool: ExecutorPool, config: Settings) -> None:
        self._redis = client
        self._pool = pool
        self._settings = config
        self._crypto = Crypto(config.master_key)

    async def access_token(self, connection: Connection, *, rejected: str = "",
                           family: str = "openai") -> Token:
        """A usable access token; `rejected` is one the provider just refused with a 401."""
        state = await self._state(connection)
        if state.status == oauth.FAILED:
            return Token(error=self._failed(connection, state))
        if state.fresh() and (not rejected or self._crypto.decrypt(state.access_enc) != rejected):
            return Token(self._crypto.decrypt(state.access_enc))
        state = await self._refresh_once(connection, state, rejected, family)
        if state.status == oauth.FAILED:
            return Token(error=self._failed(connection, state))
        return Token(self._crypto.decrypt(state.access_enc))

    @staticmethod
    def _failed(connection: Connection, state: oauth.TokenState) -> str:
        return (f"{connection.provider_id} [{connection.name}]: OAuth token refresh failed "
                f"({state.error or 'refused'}); authorize the connection again")

    async def _state(self, connection: Connection) -> oauth.TokenState:
        raw = await self._redis.get(oauth.redis_key(self._settings.env, connection.id))
        if raw:
            return oauth.TokenState.loads(raw)
        stored: dict[str, Any] = connection.settings.get("oauth") or {}
        return oauth.TokenState(
            access_enc=self._crypto.encrypt(connection.api_key) if connection.api_key else "",
            refresh_enc=str(stored.get("refresh_token_enc") or ""),
            expires_at=float(stored.get("expires_at") or 0), status=str(stored.get("status") or oauth.OK),
            error=str(stored.get("error") or ""))

    async def _refresh_once(self, connection: Connection, seen: oauth.TokenState, rejected: str,
                            family: str) -> oauth.TokenState:
        """Refresh, unless another replica does it now or has just done it."""
        env = self._settings.env
        lock, me = oauth.lock_key(env, connection.id), secrets.token_hex(8)
        deadline = time.monotonic() + LOCK_MS / 1000
        while True:
            if await self._redis.set(lock, me, nx=True, px=LOCK_MS):
                try:
                    current = await self._state(connection)
                    if self._changed(current, seen):
                        return current  # refreshed (or failed) by someone else meanwhile
                    return await self._refresh(connection, current, family)
                finally:
                    await self._release(lock, me)
            await asyncio.sleep(WAIT_STEP_S)
            current = await self._state(connection)
            if self._changed(current, seen):
                return current
            if time.monotonic() > deadline:
                return oauth.TokenState(seen.access_enc, seen.refresh_enc, seen.expires_at,
                                        oauth.FAILED, "another replica's refresh did not finish")

    def _changed(self, current: oauth.TokenState, seen: oauth.TokenState) -> bool:
        """Another replica refreshed (or failed to): compared in clear, since Fernet ciphertexts
        of one token differ each time it is encrypted."""
        if current.status == oauth.FAILED:
            return True
        if not current.access_enc or not seen.access_enc:
            return current.access_enc != seen.access_enc
        return self._crypto.decrypt(current.access_enc) != self._crypto.decrypt(seen.access_enc)

    async def _release(self, lock: str, me: str) -> None:
        # Only our own lock: one that expired and was taken over must not be deleted.
        await self._redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then "
                               "return redis.call('del', KEYS[1]) end return 0", 1, lock, me)

    async def _refresh(self, connection: Connection, current: oauth.TokenState,
                       family: str) -> oauth.TokenState:
        stored: dict[str, Any] = connection.settings.get("oauth") or {}
        if not current.refresh_enc:
            # Nothing to refresh with (GitHub's tokens come without one): no call to the
            # provider with an empty refresh token; the user authorizes the connection again.
            state = oauth.TokenState(current.access_enc, "", current.expires_at, oauth.FAILED,
                                     "the provider gave no refresh token")
            await self._save(connection, state)
            return state
        form = {"grant_type": "refresh_token", "client_id": str(stored.get("client_id") or ""),
                "refresh_token": self._crypto.decrypt(current.refresh_enc)}
        if stored.get("client_secret_enc"):
            form["client_secret"] = self._crypto.decrypt(str(stored["client_secret_enc"]))
        status, answer = await self._token_call(str(stored.get("token_url") or ""), form, family,
                                                str(stored.get("token_format") or "form"))
        try:
            if status >= 400 or "error" in answer:
                raise ValueError(str(answer.get("error_description") or answer.get("error") or status))
            state = oauth.from_token_answer(answer, self._crypto, current.refresh_enc)
        except ValueError as exc:
            log.warning("oauth refresh failed for connection %s: %s", connection.id, exc)
            state = oauth.TokenState(current.access_enc, current.refresh_enc, current.expires_at,
                                     oauth.FAILED, str(exc)[:200])
        await self._save(connection, state)
        return state

    async def _token_call(self, token_url: str, form: dict[str, str],
                          family: str, token_format: str = "form") -> tuple[int, dict[str, Any]]:
        call = executor_pb2.ExecuteRequest(
            request_id=f"oauth-refresh-{secrets.token_hex(6)}",
            operation=executor_pb2.OperationCall(kind=common_pb2.OPERATION_OAUTH_TOKEN),
            target=executor_pb2.Target(family=family, timeout_s=30),
            body=orjson.dumps({"token_url": token_url, "form": form, "format": token_format}))
        try:
            async for event in self._pool.stub(family).Execute(call, metadata=telemetry.grpc_metadata()):
                if event.WhichOneof("kind") == "response":
                    answer = orjson.loads(event.response)
                    return int(answer.get("status") or 0), answer.get("body") or {}
                if event.WhichOneof("kind") == "error":
                    return event.error.status or 502, {"error": event.error.message}
        except grpc.aio.AioRpcError as exc:
            return 502, {"error": f"executor unavailable: {exc.code().name}"}
        return 502, {"error": "no answer from the executor"}

    async def _save(self, connection: Connection, state: oauth.TokenState) -> None:
        await self._redis.set(oauth.redis_key(self._settings.env, connection.id), state.dumps(),
                              ex=STATE_TTL_S)
        try:
            async with await psycopg.AsyncConnection.connect(self._settings.database_url,
                                                             autocommit=True) as conn:
                await oauth.persist(conn, connection.id, state)
        except psycopg.Error as exc:  # Redis holds the truth meanwhile; the next refresh retries
            log.error("oauth: could not store the refreshed tokens of %s: %s", connection.id, exc)


_instances: dict[int, OAuthTokens] = {}


def for_process(client: redis.Redis, pool: ExecutorPool) -> OAuthTokens:
    """One per Redis client (per router process)."""
    found = _instances.get(id(client))
    if found is None:
        found = _instances[id(client)] = OAuthTokens(client, pool, settings.load())
    return found
