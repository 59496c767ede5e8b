"""A key's models are its own allow-list ∩ its team's (None = every model): a model either list
refuses is a 403 model_not_allowed naming the list that refused, and the per-key model listing
shows only what both allow."""

from __future__ import annotations

import dataclasses

import pytest

from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Connection, Provider, Team
from omniroute_router.errors import RoutingError
from omniroute_router.models import list_models
from omniroute_router.selection.policy import admit

PROVIDER = Provider(id="p", type="openai", family="openai", base_url="http://upstream.test",
                    models=("a", "b", "c"), enabled=True, settings={},
                    connections=(Connection(id="p-c1", provider_id="p", name="c1", api_key="sk", priority=0,
                                            enabled=True, settings={}),))
KEY = ApiKey(id="k1", name="key", enabled=True, allowed_models=None, limits={}, budget=None, expires_at=None,
             team_id="t1")


def snapshot(key_models: tuple[str, ...] | None, team_models: tuple[str, ...] | None) -> ConfigSnapshot:
    key = dataclasses.replace(KEY, allowed_models=key_models)
    team = Team(id="t1", name="T", allowed_models=team_models, limits={}, budget=None)
    return ConfigSnapshot(providers={"p": PROVIDER}, keys_by_id={key.id: key}, teams={"t1": team})


@pytest.mark.parametrize(("key_models", "team_models", "usable"), [
    (None, None, {"p/a", "p/b", "p/c"}),
    (("p/a", "p/b"), None, {"p/a", "p/b"}),
    (None, ("p/b", "p/c"), {"p/b", "p/c"}),
    (("p/a", "p/b"), ("p/b", "p/c"), {"p/b"}),
    (("p/a",), ("p/*",), {"p/a"}),           # a provider pattern in the team's list
    (("p/a",), ("p/c",), set()),
])
def test_the_effective_list_is_the_intersection(key_models: tuple[str, ...] | None,
                                                team_models: tuple[str, ...] | None, usable: set[str]) -> None:
    current = snapshot(key_models, team_models)
    for model in ("p/a", "p/b", "p/c"):
        if model in usable:
            admit(current, "k1", model)
        else:
            with pytest.raises(RoutingError) as refused:
                admit(current, "k1", model)
            assert (refused.value.status, refused.value.code) == (403, "model_not_allowed")
            key_refuses = key_models is not None and model not in key_models
            expected = "This API key may not use" if key_refuses else "The team 't1' of this API key may not use"
            assert str(refused.value.message).startswith(expected)
    listed = {m.id for m in list_models(current, key_id="k1").models}
    assert listed == usable
