"""The event streams as an AsyncAPI 3.0 document, built from the event models themselves.

Served at `GET /asyncapi.json` and printed by `jarvis-ir asyncapi`, so the published
contract can never drift from the code: every field's description comes from `shared/events.py`.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.streams import ALL_STREAMS, DEAD_LETTER

__all__ = ["asyncapi_document"]

# Who writes and who reads each stream (CONTRACT §2).
_FLOWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "jarvis:alerts": (
        ("detector", "any other system (Redis user ingest)"),
        ("triage", "recorder", "remediator", "escalator"),
    ),
    "jarvis:severity": (("triage",), ("escalator", "recorder")),
    "jarvis:actions:requested": (("triage", "operators"), ("remediator", "recorder")),
    "jarvis:actions:completed": (("remediator",), ("triage", "escalator", "recorder")),
    "jarvis:escalations": (("escalator",), ("recorder", "notifiers")),
    "jarvis:incidents": (
        ("recorder API", "triage", "escalator", "detector", "remediator"),
        ("escalator", "triage", "recorder", "remediator"),
    ),
}


def _channel_id(key: str) -> str:
    return key.removeprefix("jarvis:").replace(":", "_").replace("-", "_")


def asyncapi_document(redis_host: str = "127.0.0.1:10379") -> dict[str, Any]:
    models = [cls for spec in ALL_STREAMS for cls in spec.events]
    _, schema = models_json_schema(
        [(cls, "validation") for cls in models], ref_template="#/components/schemas/{model}"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in ALL_STREAMS:
        cid = _channel_id(spec.key)
        writers, readers = _FLOWS.get(spec.key, ((), ()))
        channels[cid] = {
            "address": spec.key,
            "description": (
                f"Redis stream `{spec.key}`: one entry per event, the event JSON in field "
                f"`__data__`. Written by {', '.join(writers)}; read by {', '.join(readers)} "
                "through consumer groups named after each service."
            ),
            "messages": {
                cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"}
                for cls in spec.events
            },
        }
        operations[f"publish_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"XADD {spec.key} * __data__ '<json>'",
        }
        operations[f"consume_{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"XREADGROUP GROUP <service> <consumer> STREAMS {spec.key} >",
        }
    channels["dead_letter"] = {
        "address": DEAD_LETTER,
        "description": (
            "Entries that were not valid events (one record each), or failed too often (one "
            "record per consumer group that gave up): flat fields `stream`, `entry_id`, "
            "`group`, `reason`, `deliveries`, `dead_at`, `payload`, `history`."
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Jarvis Responder event streams",
            "version": "1.0.0",
            "description": "Typed events between the detector, triage, remediator, escalator "
            "and recorder (CONTRACT §2). Missing envelope fields are filled in on ingest.",
        },
        "defaultContentType": "application/json",
        "servers": {"redis": {"host": redis_host, "protocol": "redis"}},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schema.get("$defs", {}),
            "messages": {
                cls.__name__: {
                    "name": cls.__name__,
                    "title": cls.__name__,
                    "summary": (cls.__doc__ or "").strip().splitlines()[0],
                    "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
                }
                for cls in models
            },
        },
    }
