"""Each service against a real Redis (and the recorder on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from services.detector.main import build as detector
from services.escalator.main import DUE_KEY
from services.escalator.main import build as escalator
from services.recorder.db import migrate
from services.recorder.main import build as recorder
from services.recorder.queries import IncidentFilter, Reader
from services.recorder.store import Outcome, TimelineStore
from services.remediator.main import build as remediator
from services.triage.main import build as triage
from shared.clock import ManualClock
from shared.events import (
    ActionRequested,
    AlertRaised,
    IncidentResolved,
    Level,
    SeverityAssigned,
)
from shared.settings import Settings
from shared.streams import (
    ACTIONS_COMPLETED,
    ACTIONS_REQUESTED,
    ALERTS,
    ESCALATIONS,
    INCIDENTS,
    SEVERITY,
)
from tests.helpers import eventually, read_stream, running, settled, stream_id

pytestmark = pytest.mark.integration


async def _entries(redis: Redis, key: str, count: int) -> list[dict[str, object]] | None:
    entries = await read_stream(redis, key)
    return entries if len(entries) >= count else None


async def test_detector_puts_posted_alerts_on_the_stream_before_answering(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [detector]) as (client, _):
        resp = await client.post(
            "/api/v1/alerts",
            json=[{"service": "backend", "check": "health"}, {"service": "ollama"}],
        )
        assert resp.status_code == 202
        entries = await read_stream(redis, ALERTS.key)  # no waiting: already there
    assert [e["service"] for e in entries] == ["backend", "ollama"]
    assert all(e["source"] == "api" and e["producer"] == "detector" for e in entries)
    assert resp.json()["event_ids"] == [e["event_id"] for e in entries]


async def test_detector_names_the_bad_field_and_publishes_nothing(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [detector]) as (client, _):
        resp = await client.post(
            "/api/v1/alerts", json=[{"service": "backend"}, {"service": "x", "impact": "huge"}]
        )
        json_type = {"content-type": "application/json"}
        too_big = await client.post(
            "/api/v1/alerts", content=b"[" + b" " * 2_000_000 + b"]", headers=json_type
        )
        not_json = await client.post("/api/v1/alerts", content=b"{oops", headers=json_type)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", 1, "impact"]
    assert too_big.status_code == 413
    assert not_json.status_code == 422
    assert await redis.xlen(ALERTS.key) == 0


async def test_triage_opens_one_incident_per_fingerprint(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    first = AlertRaised(service="backend", check="health", impact=Level.HIGH, urgency=Level.LOW)
    again = AlertRaised(service="backend", check="health", impact=Level.HIGH, urgency=Level.LOW)
    worse = AlertRaised(service="backend", check="health", impact=Level.HIGH, urgency=Level.HIGH)
    async with running(make_settings(), [triage]):
        for alert in (first, again, worse):
            await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
        severities = await eventually(lambda: _entries(redis, SEVERITY.key, 2))
        await eventually(lambda: _pending_is_zero(redis))
    opened, raised = (SeverityAssigned.model_validate(e) for e in severities)
    assert opened.severity == "P1"
    assert opened.causation_id == stream_id(first.event_id)
    assert opened.response_due_at - opened.opened_at == timedelta(hours=1)
    assert raised.severity == "P0"
    assert raised.previous_severity == "P1"
    assert raised.incident_id == opened.incident_id
    assert raised.causation_id == stream_id(worse.event_id)
    # The repeat changed nothing: no new incident, no event (the recorder counts repeats).
    assert await redis.xlen(SEVERITY.key) == 2
    assert not [
        e
        for e in await read_stream(redis, INCIDENTS.key)
        if e["causation_id"] == stream_id(again.event_id)
    ]


async def _pending_is_zero(redis: Redis) -> bool:
    return await settled(redis, ALERTS.key)


async def test_remediator_answers_once_even_when_redelivered(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    request = ActionRequested(action="docker.restart", target="backend", incident_id=None)
    async with running(make_settings(), [remediator]):
        await redis.xadd(ACTIONS_REQUESTED.key, {"__data__": request.to_json()})
        await redis.xadd(ACTIONS_REQUESTED.key, {"__data__": request.to_json()})  # redelivery
        done = await eventually(lambda: _entries(redis, ACTIONS_COMPLETED.key, 2))
    assert {d["action_id"] for d in done} == {request.action_id}
    assert {d["event_id"] for d in done} == {done[0]["event_id"]}  # the same completion
    assert done[0]["dry_run"] is True
    assert done[0]["outcome"] == "skipped"


async def test_escalator_fires_each_step_once_on_the_clock(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    assigned = SeverityAssigned(
        incident_id="6f1c1c9e-0000-4000-8000-000000000001",
        severity="P0",
        impact="high",
        urgency="high",
        response_due_at=opened + timedelta(minutes=15),
        opened_at=opened,
        reason="test",
        fingerprint="fp",
        service="backend",
    )
    async with running(make_settings(), [escalator], clock=clock):
        await redis.xadd(SEVERITY.key, {"__data__": assigned.to_json()})
        await eventually(lambda: _zcard_is(redis, 4))
        clock.advance(timedelta(minutes=16))
        first = await eventually(lambda: _entries(redis, ESCALATIONS.key, 1))
        clock.advance(timedelta(minutes=50))
        both = await eventually(lambda: _entries(redis, ESCALATIONS.key, 2))
        resolved = IncidentResolved(incident_id=assigned.incident_id)
        await redis.xadd(INCIDENTS.key, {"__data__": resolved.to_json()})
        await eventually(lambda: _zcard_is(redis, 0))
        clock.advance(timedelta(days=2))
        await redis.xadd(SEVERITY.key, {"__data__": assigned.to_json()})  # redelivered
    assert first[0]["level"] == 2
    assert [e["level"] for e in both] == [2, 3]
    assert await redis.xlen(ESCALATIONS.key) == 2


async def _zcard_is(redis: Redis, count: int) -> bool:
    return int(await redis.zcard(DUE_KEY)) == count


async def test_recorder_builds_the_timeline(
    redis: Redis, make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    alert = AlertRaised(service="backend", check="health", impact="high", urgency="high")
    async with running(settings, [triage, recorder]) as (client, _):
        await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})

        async def incident() -> list[dict[str, object]]:
            return list((await client.get("/api/v1/incidents")).json())

        (found,) = await eventually(incident)
        timeline = await eventually(lambda: _timeline(client, found["id"], 2))
        missing = await client.get("/api/v1/incidents/nope/timeline")
    assert found["severity"] == "P0"
    assert found["status"] == "open"
    assert [e["event_type"] for e in timeline[:2]] == ["AlertRaised", "SeverityAssigned"]
    assert timeline[1]["causation_id"] == stream_id(alert.event_id)
    assert missing.status_code == 404


async def _timeline(client: object, incident_id: object, count: int) -> list[dict[str, object]]:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    entries = (await client.get(f"/api/v1/incidents/{incident_id}/timeline")).json()
    return list(entries) if len(entries) >= count else []


async def test_store_is_idempotent_and_links_in_either_order(database_url: str) -> None:
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        alert = AlertRaised(service="backend")
        assigned = SeverityAssigned(
            incident_id="0d7d3c1e-0000-4000-8000-000000000002",
            causation_id=alert.event_id,
            severity="P2",
            impact="medium",
            urgency="low",
            response_due_at=alert.occurred_at,
            opened_at=alert.occurred_at,
            reason="test",
            fingerprint=alert.fingerprint,
            service="backend",
        )
        # The severity arrives before the alert it reacts to (different streams).
        assert await store.record(assigned) is Outcome.STORED
        assert await store.record(alert) is Outcome.STORED
        assert await store.record(alert) is Outcome.DUPLICATE  # redelivery
        assert await store.record(assigned) is Outcome.DUPLICATE
        reader = Reader(store.sessions)
        timeline = await reader.timeline(assigned.incident_id or "")
        assert [item.row.event_id for item in timeline] == [alert.event_id, assigned.event_id]
        (incident,), total = await reader.list_incidents(IncidentFilter(severity="P2"))
        assert (incident.id, total) == (assigned.incident_id, 1)
        assert await reader.list_incidents(IncidentFilter(status="resolved")) == ([], 0)
    finally:
        await store.close()
