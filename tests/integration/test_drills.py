"""Drills through the real bus and the recorder's API: who may start one, how triage marks
the drill's incident, how the escalator caps it, and the report the API gives."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.escalator.main import build as build_escalator
from services.recorder.main import build as build_recorder
from services.triage.main import build as build_triage
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import AlertRaised, DrillStarted, Severity, utcnow
from shared.settings import Settings
from shared.streams import INCIDENTS, SEVERITY
from tests.helpers import eventually, read_stream, running
from tests.integration._escalator_support import escalations_of, severity_event

pytestmark = pytest.mark.integration

TOKEN = "drill-token"


def _drills(make_settings: Callable[..., Settings], **drills: Any) -> Settings:
    return make_settings(api_token=TOKEN, drills=drills)


async def test_a_drill_needs_the_token_the_switch_and_an_allowlisted_target(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"scenario": "backend-down", "by": "alice"}
    async with running(_drills(make_settings), [build_recorder]) as (client, _):
        assert (await client.post("/api/v1/drills", json=body)).status_code == 401
        off = await client.post("/api/v1/drills", json=body, headers=auth)
        assert off.status_code == 403
        assert "drills.enabled" in off.json()["detail"]
    settings = _drills(make_settings, enabled=True, allowed_targets=["sutazai-postgres"])
    async with running(settings, [build_recorder]) as (client, _):
        refused = await client.post("/api/v1/drills", json=body, headers=auth)
        assert refused.status_code == 403
        assert "backend is not in drills.allowed_targets" in refused.json()["detail"]
        bad = await client.post("/api/v1/drills", json={"scenario": "rm-rf"}, headers=auth)
        assert bad.status_code == 422
        assert (await client.get("/api/v1/drills/nope")).status_code == 404
    assert await read_stream(redis, INCIDENTS.key) == []


async def test_the_drills_incident_is_marked_and_its_report_measures_the_loop(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = _drills(
        make_settings,
        enabled=True,
        allowed_targets=["sutazai-postgres"],
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(settings, [build_recorder, build_triage]) as (client, runtime):
        started = await client.post(
            "/api/v1/drills", json={"scenario": "postgres-down", "by": "alice"}, headers=auth
        )
        assert started.status_code == 201, started.text
        drill = started.json()
        assert (drill["status"], drill["target"], drill["by"]) == (
            "injected",
            "sutazai-postgres",
            "alice",
        )
        assert drill["fault"] == "docker stop sutazai-postgres"
        bus = runtime.bus("test")

        async def announced() -> bool:
            found = await redis.hget("jarvis:triage:drills", "postgres")
            return found is not None

        await eventually(announced)
        await bus.publish(AlertRaised(service="sutazai-postgres", check="connect", summary="down"))

        async def assigned() -> list[dict[str, Any]]:
            return await read_stream(redis, SEVERITY.key)

        (first,) = await eventually(assigned)
        # The backend joining (it depends on PostgreSQL) keeps the incident a drill's; the
        # mark is used up, so a later incident of the service would not be.
        await bus.publish(AlertRaised(service="backend", check="health", summary="odd"))
        await eventually(lambda: _count(redis, SEVERITY.key, 2))
        assert await redis.hget("jarvis:triage:drills", "postgres") is None

        async def detected() -> dict[str, Any] | None:
            answer = (await client.get(f"/api/v1/drills/{drill['id']}")).json()
            return answer if answer["status"] == "detected" else None

        report = await eventually(detected)
        listed = (await client.get("/api/v1/drills")).json()
    assert first["drill_id"] == drill["id"]
    assert first["title"] == "[DRILL] down"
    second = (await read_stream(redis, SEVERITY.key))[1]
    assert (second["incident_id"], second["drill_id"]) == (first["incident_id"], drill["id"])
    assert report["incident_id"] == first["incident_id"]
    assert report["playbook"] == "database_connection_failures"
    assert 0 <= report["detected_s"] < 10
    assert report["steps"][0]["action"] == "diagnostics.collect"
    assert [d["id"] for d in listed] == [drill["id"]]


async def test_a_drill_announced_too_long_ago_marks_nothing(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [build_triage]) as (_client, runtime):
        old = DrillStarted(
            drill_id=str(uuid.uuid4()),
            scenario="backend-down",
            service="backend",
            target="backend",
            fault="docker kill backend",
            injected_at=utcnow() - timedelta(seconds=600),
            window_s=120,
        )
        bus = runtime.bus("test")
        await bus.publish(old)
        await eventually(lambda: redis.hget("jarvis:triage:drills", "backend"))
        await bus.publish(AlertRaised(service="backend", check="health", summary="down"))
        (assigned,) = await eventually(lambda: read_stream(redis, SEVERITY.key))
    assert assigned["drill_id"] is None
    assert await redis.hget("jarvis:triage:drills", "backend") is None


async def test_a_drills_incident_escalates_no_higher_than_the_configured_level(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    settings = make_settings(drills={"max_escalation_level": 1})
    drill_incident, real_incident = str(uuid.uuid4()), str(uuid.uuid4())
    async with running(settings, [build_escalator], clock=clock):
        bus = EventBus(redis, producer="test")
        for incident, drill in ((drill_incident, str(uuid.uuid4())), (real_incident, None)):
            await bus.publish(
                severity_event(incident, Severity.P0, clock.now(), data_loss=True, drill_id=drill)
            )
        await eventually(lambda: _escalated(redis, drill_incident, real_incident))
        clock.advance(4 * 3600 + 1)  # a P0 reaches level 4 after 4 h: a drill does not
        await eventually(lambda: _level(redis, real_incident, 4))
        drill_levels = [e["level"] for e in await escalations_of(redis, drill_incident)]
    real_levels = [e["level"] for e in await escalations_of(redis, real_incident)]
    assert drill_levels
    assert max(drill_levels) == 1
    assert max(real_levels) == 4


async def _escalated(redis: Redis, *incidents: str) -> bool:
    return all([await escalations_of(redis, i) for i in incidents])


async def _level(redis: Redis, incident: str, level: int) -> bool:
    return any(e["level"] >= level for e in await escalations_of(redis, incident))


async def _count(redis: Redis, key: str, n: int) -> bool:
    return len(await read_stream(redis, key)) >= n
