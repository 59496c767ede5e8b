"""Model lists without a stack: the kind of a listed model, when the admin reads a list again,
and the router's listing (declared, custom, discovered, combos, aliases; filtered per key)."""

from __future__ import annotations

from omniroute.catalog import provider_type
from omniroute.config.routing_spec import ComboSpec
from omniroute.config.snapshot import ApiKey, ConfigSnapshot, Provider
from omniroute.model_lists import ModelList, _parsed, fingerprint, kind_of
from omniroute_admin.features.model_discovery import REFRESH_S, RETRY_S, due
from omniroute_router.models import list_models


def test_kinds() -> None:
    openai = provider_type("openai")
    assert kind_of("gpt-4o", openai) == "chat"
    assert kind_of("text-embedding-3-small", None) == "embedding"
    assert kind_of("dall-e-3", None) == "image" and kind_of("gpt-image-1", None) == "image"
    assert kind_of("whisper-1", None) == "audio"
    assert kind_of("nova-3", provider_type("deepgram")) == "audio"


def test_when_a_list_is_read_again() -> None:
    config = fingerprint({"id": "p", "base_url": "https://a"})
    good = ModelList("p", (("chat", "m"),), "provider", fetched_at=1000.0, config=config)
    assert due(None, config, 1000.0)
    assert not due(good, config, 1000.0 + REFRESH_S - 1) and due(good, config, 1000.0 + REFRESH_S)
    assert due(good, fingerprint({"id": "p", "base_url": "https://b"}), 1001.0)   # reconfigured
    failing = ModelList("p", good.models, "provider", 1000.0, "503", 2000.0, config)
    assert not due(failing, config, 2000.0 + RETRY_S - 1) and due(failing, config, 2000.0 + RETRY_S)
    never = ModelList("p", (), "", 0.0, "executor_unavailable", 2000.0, config)
    assert due(never, config, 2000.5)   # never read: every round


def test_the_listing_merges_and_filters_per_key() -> None:
    provider = Provider(id="p", type="openai", family="openai", base_url="", models=("declared",),
                        enabled=True, settings={"embedding_models": ["emb"]}, connections=())
    narrow = ApiKey(id="k", name="narrow", enabled=True, allowed_models=("p/declared", "p/found"),
                    limits={}, budget=None, expires_at=None)
    snapshot = ConfigSnapshot(providers={"p": provider}, keys_by_id={"k": narrow}, aliases={"al": "p/found"},
                              combos={"c": ComboSpec(name="c", models=["p/emb"])})
    discovered = {"p": ModelList("p", (("chat", "declared"), ("chat", "found"), ("image", "pic")))}
    everything = {(m.id, m.kind) for m in list_models(snapshot, discovered).models}
    assert everything == {("p/declared", "chat"), ("p/emb", "embedding"), ("p/found", "chat"),
                          ("p/pic", "image"), ("c", "combo"), ("al", "alias")}
    assert {m.id for m in list_models(snapshot, discovered, "k").models} == {"p/declared", "p/found", "al"}


def test_a_document_round_trips_and_an_unreadable_one_is_none() -> None:
    listed = ModelList("p", (("chat", "m"),), "provider", 1.0, "503 x", 2.0, "cfg")
    assert _parsed(listed.dumps()) == listed
    assert _parsed(b'{"provider": "p", "models": [{"id": "m"}]}') is None   # the layout before
    assert _parsed(None) is None
