"""One registry of wire formats: the proto enum, the edge's client formats and the executor's
families all agree with it, and it says which format each family speaks."""

from __future__ import annotations

from omniroute import catalog
from omniroute.formats import registry
from omniroute.v1 import common_pb2
from omniroute_edge import client_formats
from omniroute_executor.families import FAMILIES, OPERATION_ONLY


def test_the_registry_has_every_proto_format_and_no_other() -> None:
    proto_names = {name for name in common_pb2.ApiFormat.keys() if name != "API_FORMAT_UNSPECIFIED"}
    assert {wire.proto_name for wire in registry.FORMATS.values()} == proto_names
    for name, wire in registry.FORMATS.items():
        assert wire.module.FORMAT == name
        assert registry.wire_format(name) is registry.wire_format(wire.proto_name) is wire


def test_the_edge_client_formats_are_built_from_the_registry() -> None:
    edge = [client_formats.OPENAI_CHAT, client_formats.OPENAI_RESPONSES, client_formats.ANTHROPIC,
            client_formats.GEMINI, client_formats.OLLAMA]
    assert [fmt.wire for fmt in edge] == list(registry.FORMATS.values())
    for fmt in edge:
        assert fmt.proto == common_pb2.ApiFormat.Value(fmt.wire.proto_name)
        assert fmt.module is fmt.wire.module
    assert client_formats.OLLAMA.ndjson and client_formats.OLLAMA.stream_media_type == "application/x-ndjson"
    assert not client_formats.ANTHROPIC.ndjson
    assert client_formats.ANTHROPIC.stream_media_type == "text/event-stream"


def test_each_family_speaks_a_registry_format() -> None:
    expected = {"openai": "openai_chat", "openai-responses": "openai_responses", "anthropic": "anthropic",
                "gemini": "gemini", "gemini-code-assist": "gemini", "ollama": "ollama"}
    assert {name: family.wire_format.name for name, family in FAMILIES.items()} == expected
    for family in FAMILIES.values():
        assert family.wire_format is registry.FORMATS[family.wire_format.name]
        assert family.module is family.wire_format.module
        assert family.native_format == common_pb2.ApiFormat.Value(family.wire_format.proto_name)
    assert FAMILIES["ollama"].framing == "ndjson" and FAMILIES["gemini"].framing == "sse"


def test_the_executor_has_a_family_for_each_family_format_and_no_other() -> None:
    assert set(FAMILIES) == set(registry.FAMILY_FORMATS)
    for name, family in FAMILIES.items():
        assert registry.family_format(name) is family.wire_format
    assert all(registry.family_format(name) is None for name in OPERATION_ONLY)


def test_every_catalog_family_is_served_by_the_executor() -> None:
    families = {kind.family for kind in catalog.PROVIDER_TYPES.values()}
    assert families <= set(registry.FAMILY_FORMATS) | OPERATION_ONLY
