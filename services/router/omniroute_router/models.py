"""The model list every client format's /models route is built from: what the providers declare
and what their own model lists offer (discovered by the admin in the background, read here from
Redis in the background: omniroute.model_lists), custom models, combos and aliases; only those
the calling key may use."""

from __future__ import annotations

import asyncio
import logging
import time

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.model_lists import ModelList, ModelLists
from omniroute.v1 import router_pb2
from omniroute_router.errors import RoutingError
from omniroute_router.selection.policy import admit

log = logging.getLogger("omniroute.router.models")
READ_EVERY_S = 5.0   # how stale a router's copy of the discovered lists may be


class Discovered:
    """This router's copy of the providers' discovered lists, re-read every READ_EVERY_S by a
    background task (started by the first listing, which waits for the first read)."""

    def __init__(self, lists: ModelLists) -> None:
        self._lists = lists
        self.current: dict[str, ModelList] = {}
        self._providers: tuple[str, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def get(self, snapshot: ConfigSnapshot) -> dict[str, ModelList]:
        self._providers = tuple(snapshot.providers)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await self._first.wait()
        return self.current

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self.current = await self._lists.read_all(self._providers)
            except Exception as exc:  # Redis away: keep the copy we have; the next read retries
                log.warning("reading the discovered model lists failed (%s); keeping the last ones", exc)
            self._first.set()
            await asyncio.sleep(max(0.0, READ_EVERY_S - (time.monotonic() - started)))


def list_models(snapshot: ConfigSnapshot, discovered: dict[str, ModelList] | None = None,
                key_id: str = "") -> router_pb2.ListModelsResponse:
    created = int(snapshot.loaded_at)
    listed: dict[str, router_pb2.ModelInfo] = {}

    def add(model_id: str, owner: str, kind: str) -> None:
        if model_id not in listed:   # the first kind named wins: declared, custom, discovered
            listed[model_id] = router_pb2.ModelInfo(id=model_id, owned_by=owner, kind=kind, created=created)

    providers = [p for p in snapshot.providers.values() if p.enabled]
    for provider in providers:
        for model in provider.models:
            add(f"{provider.id}/{model}", provider.id, "chat")
        # Embedding, image and audio models a provider declares (settings.<kind>_models).
        for kind in ("embedding", "image", "audio"):
            for model in provider.settings.get(f"{kind}_models") or ():
                if isinstance(model, str):
                    add(f"{provider.id}/{model}", provider.id, kind)
        # Custom models added through the admin API (/api/provider-models).
        for kind, model in snapshot.custom_models.get(provider.id, ()):
            add(f"{provider.id}/{model}", provider.id, kind)
        # What the provider's own list offers (the last good list read).
        for kind, model in (discovered or {}).get(provider.id, ModelList(provider.id)).models:
            add(f"{provider.id}/{model}", provider.id, kind)
    # Combos (and aliases) are models too: a client names them like any other.
    for name, combo in sorted(snapshot.combos.items()):
        if combo.enabled:
            add(name, "combo", "combo")
    for alias in sorted(snapshot.aliases):
        add(alias, "alias", "alias")
    models = [m for m in listed.values() if _usable(snapshot, key_id, m.id)]
    return router_pb2.ListModelsResponse(models=models)


def _usable(snapshot: ConfigSnapshot, key_id: str, model: str) -> bool:
    """Whether this key may name the model: the same checks as a request's (allow-list, policies)."""
    try:
        admit(snapshot, key_id, model)
    except RoutingError as exc:
        return exc.status not in (401, 403)   # else listed: it exists, a request says what is wrong
    return True
