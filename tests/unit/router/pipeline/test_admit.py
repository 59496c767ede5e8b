"""The admit stage: a refused key or an unknown model answers with the error alone; an admitted
request carries its key, policies, rewritten model and resolved node on to the next stages."""

from __future__ import annotations

from omniroute.config.routing_spec import PolicySpec, RoutingSettings
from omniroute.config.snapshot import ConfigSnapshot
from omniroute_router.pipeline.admit import admit
from omniroute_router.selection.resolve import Target

from .stages import KEY, Answering, make_call, provider, response, run, start


def snapshot() -> ConfigSnapshot:
    rewrite = PolicySpec.model_validate({"name": "old", "rewrite": {"old/m": "p/m"}})
    return ConfigSnapshot(providers={"p": provider()}, keys_by_id={KEY.id: KEY},
                          routing=RoutingSettings.model_validate({"policies": [rewrite.model_dump()]}))


async def test_an_unknown_key_is_refused_before_anything_else() -> None:
    next = Answering([start()])
    [event] = await run(admit, make_call(snapshot=snapshot(), key_id="nobody"), next)
    assert (event.error.status, event.error.code) == (401, "invalid_api_key") and not next.calls


async def test_an_unknown_model_is_refused() -> None:
    next = Answering([start()])
    [event] = await run(admit, make_call(snapshot=snapshot(), key_id=KEY.id, model="nowhere/m"), next)
    assert event.error.code == "model_not_found" and not next.calls


async def test_an_admitted_call_carries_what_admit_learned() -> None:
    next = Answering([start(), response()])
    events = await run(admit, make_call(snapshot=snapshot(), key_id=KEY.id, model="old/m"), next)
    assert len(events) == 2
    [call] = next.calls
    assert call.key == KEY and call.requested == "p/m" and [p.name for p in call.policies] == ["old"]
    assert isinstance(call.node, Target) and call.node.name == "p/m"
