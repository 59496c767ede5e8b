"""The plan stage: the resolved model as the ordered steps to try (selection/plan.py: each
combo's strategy, then the global fallback model). An operation keeps only the steps whose
provider can do it."""

from __future__ import annotations

from omniroute.v1 import common_pb2
from omniroute_router.pipeline.call import Call, Events, Next
from omniroute_router.selection.accounts import Accounts
from omniroute_router.selection.capability import serves
from omniroute_router.selection.combo_state import ComboState
from omniroute_router.selection.plan import plan


class Plan:
    def __init__(self, combos: ComboState, accounts: Accounts) -> None:
        self._combos = combos
        self._accounts = accounts

    async def __call__(self, call: Call, next: Next) -> Events:
        steps = await plan(call.snapshot, call.resolved, self._combos, self._accounts, call.requested)
        request = call.request
        if request.operation != common_pb2.OPERATION_CHAT:
            steps = [s for s in steps if serves(s.target.provider.type, s.target.provider.family,
                                                request.operation, request.client_format)]
        call.steps = steps
        async for event in next(call):
            yield event
