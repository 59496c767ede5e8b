"""The dispatch stage, last: the plan's steps tried in order, account by account, with fallback
before the answer's first byte (dispatch/dispatch.py). It answers; there is no `next`."""

from __future__ import annotations

from omniroute.executor_pool import ExecutorPool
from omniroute_router.dispatch.dispatch import Dispatch, dispatch
from omniroute_router.pipeline.call import Call, Events, Next
from omniroute_router.selection.accounts import Accounts
from omniroute_router.state import RouterState


class DispatchStage:
    def __init__(self, pool: ExecutorPool, state: RouterState, accounts: Accounts, timeout_s: float) -> None:
        self._pool = pool
        self._state = state
        self._accounts = accounts
        self._timeout_s = timeout_s

    async def __call__(self, call: Call, next: Next) -> Events:
        ctx = Dispatch(pool=self._pool, shared=self._state, accounts=self._accounts, snapshot=call.snapshot,
                       key=call.key, policies=call.policies, default_timeout_s=self._timeout_s,
                       start_headers=call.headers)
        async for event in dispatch(ctx, call.upstream, call.steps, call.attempts):
            yield event
