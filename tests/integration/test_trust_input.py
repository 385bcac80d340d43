"""Input that broke storage or output (issue 18, finding 6) and grew without bound (finding
7), refused at the edge with a 4xx over HTTP and dead-lettered on the stream."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.detector.budget import ServiceBudget
from services.detector.main import build as build_detector
from services.remediator.main import build as build_remediator
from services.triage.main import build as build_triage
from shared.events import ActionApproved
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running, settled

pytestmark = pytest.mark.integration


async def test_nul_bytes_are_refused_at_the_edge_and_leave_no_ghost_incident(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """A NUL broke PostgreSQL's insert, leaving an incident triage acted on and the API could
    not show."""
    async with running(make_settings(), [build_detector, build_triage]) as (client, _):
        for body in (
            {"service": "backend", "summary": "down\u0000"},
            {"service": "backend", "labels": {"k": "v\u0000"}},
            {"service": "backend", "description": "x", "check": "a\u0000b"},
        ):
            answer = await client.post("/api/v1/alerts", json=body)
            assert answer.status_code == 422, body
            assert "NUL" in answer.text or "control character" in answer.text
        await redis.xadd(
            "jarvis:alerts", {"__data__": json.dumps({"service": "backend", "summary": "x\u0000"})}
        )
        dead = await eventually(lambda: read_stream(redis, "jarvis:dead-letter"))
        await eventually(lambda: settled(redis, "jarvis:alerts", "triage"))
    assert "NUL" in dead[0]["reason"] or "control character" in dead[0]["reason"]
    assert await redis.keys("jarvis:triage:incident:*") == []
    assert await redis.xlen("jarvis:severity") == 0


async def test_line_breaks_cannot_forge_log_lines(
    redis: Redis,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    forged = "x\n2026-01-01 00:00:00 CRITICAL remediator: all approvals revoked"
    caplog.set_level(logging.INFO)
    async with running(make_settings(), [build_detector, build_remediator]) as (client, _):
        refused = await client.post("/api/v1/alerts", json={"service": forged})
        approval = ActionApproved(action_id=forged, approver=forged)
        await redis.xadd("jarvis:incidents", {"__data__": approval.to_json()})
        await redis.xadd("jarvis:alerts", {"__data__": json.dumps({"service": forged})})
        await eventually(lambda: settled(redis, "jarvis:incidents", "remediator"))
        await eventually(lambda: settled(redis, "jarvis:alerts", "remediator"))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "service"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("refused" in m for m in logged)  # the forged approval was logged, quoted
    assert any("invalid" in m for m in logged)  # and the forged alert
    assert not [m for m in logged if "\n" in m and "CRITICAL" in m]


async def test_label_maps_are_bounded(redis: Redis, make_settings: Callable[..., Settings]) -> None:
    """Finding 7: a label map had no size limit."""
    async with running(make_settings(), [build_detector]) as (client, _):
        many = {f"l{i}": "v" for i in range(65)}
        too_many = await client.post("/api/v1/alerts", json={"service": "x", "labels": many})
        long_value = await client.post(
            "/api/v1/alerts", json={"service": "x", "labels": {"k": "v" * 1025}}
        )
        fine = await client.post(
            "/api/v1/alerts",
            json={"service": "backend", "labels": {f"l{i}": "v" * 1024 for i in range(64)}},
        )
    assert too_many.status_code == long_value.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "labels"]
    assert "at most 64" in too_many.text
    assert fine.status_code == 202
    assert await redis.xlen("jarvis:alerts") == 1


async def test_new_unknown_services_are_capped(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Finding 7: each unique service made a permanent open incident."""
    settings = make_settings(detector={"max_unknown_services": 2, "known_services": ["backup"]})
    async with running(settings, [build_detector]) as (client, _):
        statuses = [
            (await client.post("/api/v1/alerts", json={"service": s})).status_code
            for s in ("svc-a", "svc-b", "svc-a", "backend", "backup", "sutazai-postgres")
        ]
        third = await client.post("/api/v1/alerts", json=[{"service": "svc-c"}, {"service": "x"}])
    assert statuses == [202] * 6  # two unknown ones, again, and known ones
    assert third.status_code == 429
    assert "max_unknown_services" in third.json()["detail"]
    assert await redis.xlen("jarvis:alerts") == 6


async def test_admitted_unknown_services_are_not_rechecked_on_every_request(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Issue 16: every request naming an unknown service cost a script call to Redis. An
    admitted service is remembered for a tenth of the window (at most a minute); its
    last-seen time in Redis is refreshed after that, so it stays inside the window."""
    settings = make_settings(detector={"max_unknown_services": 2})
    budget = ServiceBudget(redis, settings)
    key = "jarvis:detector:unknown-services"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert await budget.over(["svc-a"], t0) == []
    assert await redis.zscore(key, "svc-a") == t0.timestamp()
    assert await budget.over(["svc-a"], t0 + timedelta(seconds=30)) == []
    assert await redis.zscore(key, "svc-a") == t0.timestamp()  # no round trip
    assert await budget.over(["svc-a", "svc-b"], t0 + timedelta(seconds=40)) == []
    assert await redis.zscore(key, "svc-b") == (t0 + timedelta(seconds=40)).timestamp()
    later = t0 + timedelta(seconds=61)
    assert await budget.over(["svc-a"], later) == []
    assert await redis.zscore(key, "svc-a") == later.timestamp()  # refreshed
    # The cap still holds: a third service is refused, and not remembered as admitted.
    assert await budget.over(["svc-c"], later) == ["svc-c"]
    assert await budget.over(["svc-c"], later) == ["svc-c"]
