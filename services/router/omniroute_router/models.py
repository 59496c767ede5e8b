"""The model list every client format's /models route is built from."""

from __future__ import annotations

from omniroute.config.snapshot import ConfigSnapshot
from omniroute.v1 import router_pb2


def list_models(snapshot: ConfigSnapshot) -> router_pb2.ListModelsResponse:
    created = int(snapshot.loaded_at)
    models = [router_pb2.ModelInfo(id=f"{provider.id}/{model}", owned_by=provider.id, kind="chat",
                                   created=created)
              for provider in snapshot.providers.values() if provider.enabled
              for model in provider.models]
    # Embedding, image and audio models a provider declares (settings.<kind>_models).
    models += [router_pb2.ModelInfo(id=f"{provider.id}/{model}", owned_by=provider.id, kind=kind,
                                    created=created)
               for provider in snapshot.providers.values() if provider.enabled
               for kind in ("embedding", "image", "audio")
               for model in provider.settings.get(f"{kind}_models") or () if isinstance(model, str)]
    # Custom models added through the admin API (/api/provider-models), unless declared already.
    listed = {(m.id, m.kind) for m in models}
    models += [router_pb2.ModelInfo(id=f"{provider.id}/{model}", owned_by=provider.id, kind=kind,
                                    created=created)
               for provider in snapshot.providers.values() if provider.enabled
               for kind, model in snapshot.custom_models.get(provider.id, ())
               if (f"{provider.id}/{model}", kind) not in listed]
    # Combos (and aliases) are models too: a client names them like any other.
    models += [router_pb2.ModelInfo(id=name, owned_by="combo", kind="combo", created=created)
               for name, combo in sorted(snapshot.combos.items()) if combo.enabled]
    models += [router_pb2.ModelInfo(id=alias, owned_by="alias", kind="alias", created=created)
               for alias in sorted(snapshot.aliases)]
    return router_pb2.ListModelsResponse(models=models)
