"""Malformed input everywhere: nothing crashes, nothing gets stuck, each rejection has a reason.

Hypothesis writes malformed entries straight onto every stream while all five services
run, and sends malformed bodies to every HTTP endpoint that accepts one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.cli import SERVICES
from shared.consumer import InvalidEntry, decode_entry
from shared.events import AlertRaised
from shared.settings import Settings
from shared.streams import ALERTS, ALL_STREAMS, DEAD_LETTER
from tests.helpers import eventually, running, settled

pytestmark = pytest.mark.integration

# CI replays the same inputs every run, so a red build always means a change broke
# something; developers' runs explore new random inputs (and keep failures in .hypothesis/).
_IN_CI = bool(os.environ.get("CI"))

_text = st.text(max_size=40)
_json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "service",
        "check",
        "status",
        "impact",
        "urgency",
        "event_type",
        "labels",
        "severity",
        "incident_id",
        "action",
        "level",
        "occurred_at",
        "event_id",
        "x",
    ]
) | _text.filter(bool)
# What a careless or hostile writer puts on a stream.
_entry = st.one_of(
    st.dictionaries(_field_names, st.binary(max_size=60), min_size=1, max_size=5),
    st.builds(lambda v: {"__data__": json.dumps(v).encode()}, _json),
    st.builds(
        lambda v: {"__data__": json.dumps(v).encode()},
        st.dictionaries(_field_names, _json, max_size=6),
    ),
    st.builds(lambda b: {"__data__": b}, st.binary(max_size=80)),
)


def _valid(fields: dict[bytes, bytes], key: str) -> bool:
    spec = next(s for s in ALL_STREAMS if s.key == key)
    try:
        decode_entry(fields, spec)
    except InvalidEntry:
        return False
    return True


async def _all_acked(redis: Redis) -> bool:
    for spec in ALL_STREAMS:
        if await redis.exists(spec.key) and not await settled(redis, spec.key):
            return False
    return True


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # Each example starts all five services: report a failing input, do not shrink it for
    # minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    derandomize=_IN_CI,
)
@given(entries=st.lists(st.tuples(st.sampled_from(ALL_STREAMS), _entry), min_size=5, max_size=25))
async def test_malformed_stream_entries_are_dead_lettered_and_nothing_sticks(
    redis_server: str, make_settings: Callable[..., Settings], entries: list[Any]
) -> None:
    redis = Redis.from_url(redis_server)
    await redis.flushall()
    try:
        async with running(make_settings(), list(SERVICES.values())) as (client, _):
            invalid: set[str] = set()
            for spec, fields in entries:
                raw = {k.encode() if isinstance(k, str) else k: v for k, v in fields.items()}
                entry_id = (await redis.xadd(spec.key, raw)).decode()
                if not _valid(raw, spec.key):
                    invalid.add(entry_id)
            # The database outlives an example; a fresh service name keeps examples apart.
            sentinel = AlertRaised(service=f"sentinel-{uuid.uuid4().hex[:8]}", impact="low")
            await redis.xadd(ALERTS.key, {"__data__": sentinel.to_json()})

            async def sentinel_recorded() -> bool:
                found = (await client.get(f"/api/v1/incidents?service={sentinel.service}")).json()
                return len(found) == 1

            await eventually(sentinel_recorded, timeout=20)
            await eventually(lambda: _all_acked(redis), timeout=20)
            dead = {
                fields[b"entry_id"].decode(): fields[b"reason"].decode()
                for _, fields in await redis.xrange(DEAD_LETTER)
            }
            health = (await client.get("/health")).json()
        assert invalid <= set(dead), "every invalid entry is dead-lettered"
        assert all(dead[entry_id] for entry_id in invalid), "each with a reason"
        assert health["status"] == "ok"
    finally:
        await redis.aclose()


_bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_field_names, _json, max_size=8).map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(_field_names, _json, max_size=5), max_size=4).map(
        lambda v: json.dumps(v).encode()
    ),
)


async def test_malformed_http_bodies_get_4xx_never_5xx(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), list(SERVICES.values())) as (client, _):
        schema = (await client.get("/openapi.json")).json()
        posts = [
            path.replace("{incident_id}", "x").replace("{action_id}", "x")
            for path, ops in schema["paths"].items()
            if "post" in ops
        ]
        assert "/api/v1/alerts" in posts
        failures: list[str] = []

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=_IN_CI,
        )
        @given(body=_bodies)
        def check(body: bytes) -> None:
            bodies.append(body)

        bodies: list[bytes] = []
        check()
        for path in posts:
            for body in bodies:
                resp = await client.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
                if resp.status_code >= 500:
                    failures.append(f"{path} {body[:80]!r} -> {resp.status_code}")
    assert not failures, failures
