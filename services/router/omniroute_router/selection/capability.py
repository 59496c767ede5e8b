"""Which providers can do a non-chat operation (embeddings, images, transcription, provider-side
token counts), from the catalog's provider types, and which wire format each family speaks."""

from __future__ import annotations

from omniroute.catalog import provider_type
from omniroute.formats import registry
from omniroute.v1 import common_pb2
from omniroute_router.errors import RoutingError
from omniroute_router.selection.resolve import Node, targets

# Operation → (catalog capability, usage subject suffix). Token counts are free: no usage row.
CAPABILITY: dict[int, tuple[str, str]] = {common_pb2.OPERATION_EMBEDDINGS: ("embeddings", "embeddings"),
              common_pb2.OPERATION_IMAGES: ("images", "images"),
              common_pb2.OPERATION_TRANSCRIPTION: ("audio", "transcription"),
              common_pb2.OPERATION_COUNT_TOKENS: ("chat", "")}
# The proto value of the format each executor family speaks (omniroute.formats.registry owns
# the map; this is its proto view). A caller of that format is passed through to it.
_FAMILY_FORMAT: dict[str, int] = {
    family: common_pb2.ApiFormat.Value(wire.proto_name) for family, wire in registry.FAMILY_FORMATS.items()}
# Provider-side token counts: the caller's body goes upstream as it is, so only a family that
# speaks the caller's format can count it (an Anthropic body is no Gemini countTokens request),
# and of those only these have a token-count API.
COUNTING_FORMATS = frozenset({common_pb2.ANTHROPIC, common_pb2.GEMINI})


def family_format(family: str) -> int:
    """The format an executor family speaks (API_FORMAT_UNSPECIFIED: none, no chat API)."""
    return _FAMILY_FORMAT.get(family, common_pb2.API_FORMAT_UNSPECIFIED)


def check_capability(node: Node, operation: int, client_format: int = common_pb2.ANTHROPIC) -> None:
    """An operation the router does not serve → 400; a direct `provider/model` whose provider type
    cannot do this → 400 that says so. Combos keep only their capable steps (a combo may mix kinds)."""
    if operation not in CAPABILITY:
        raise RoutingError(400, f"The operation {operation} is not served by the router.",
                           code="unsupported_operation")
    capability = CAPABILITY[operation][0]
    capable = [t for t in targets(node) if serves(t.provider.type, t.provider.family, operation, client_format)]
    if operation == common_pb2.OPERATION_COUNT_TOKENS and not capable:
        # Only Anthropic and Gemini count on the provider's side; the edge counts the others itself.
        raise RoutingError(400, "The model's provider has no token-count API.", code="count_locally")
    if not capable:
        names = ", ".join(sorted({t.provider.id for t in targets(node)}))
        raise RoutingError(400, f"The provider {names} does not serve {capability} "
                                f"(model {targets(node)[0].name!r}).", code="unsupported_operation")


def serves(type_name: str, family: str, operation: int, client_format: int = common_pb2.ANTHROPIC) -> bool:
    if operation == common_pb2.OPERATION_COUNT_TOKENS:
        return client_format in COUNTING_FORMATS and family_format(family) == client_format
    kind = provider_type(type_name)
    return kind is None or kind.can(CAPABILITY[operation][0])


def usage_subject(operation: int) -> str:
    """The usage subject suffix of an operation ("" for none: no usage event)."""
    if operation == common_pb2.OPERATION_CHAT:
        return "chat"
    return CAPABILITY.get(operation, ("", ""))[1]
