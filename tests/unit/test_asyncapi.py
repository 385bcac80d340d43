"""The AsyncAPI document is built from the event models and covers every stream."""

from __future__ import annotations

from shared.asyncapi import asyncapi_document
from shared.streams import ALL_STREAMS


def test_every_stream_and_event_is_documented_with_descriptions() -> None:
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {spec.key for spec in ALL_STREAMS} | {"jarvis:dead-letter"} <= addresses
    for spec in ALL_STREAMS:
        for cls in spec.events:
            schema = doc["components"]["schemas"][cls.__name__]
            assert schema["properties"]["event_id"]["description"]
            assert doc["components"]["messages"][cls.__name__]["payload"]["$ref"].endswith(
                cls.__name__
            )
    alert = doc["components"]["schemas"]["AlertRaised"]
    assert "service" in alert["required"]


def test_references_resolve() -> None:
    doc = asyncapi_document()

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        target: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict)
            assert part in target, ref
            target = target[part]
