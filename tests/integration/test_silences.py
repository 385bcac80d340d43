"""Silences and maintenance windows through the real bus and Redis: the recorder's API,
triage keeping silenced alerts from opening incidents (and bringing them back when the
window ends while they still fire), and nobody paged for a silenced alert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.escalator.main import build as build_escalator
from services.recorder.main import build as build_recorder
from services.remediator.main import build as build_remediator
from services.triage.main import build as build_triage
from shared.clock import ManualClock
from shared.events import AlertRaised, AlertStatus, utcnow
from shared.settings import Settings
from shared.streams import ALERTS, ESCALATIONS, INCIDENTS
from tests.helpers import eventually, read_stream, running

pytestmark = pytest.mark.integration

TOKEN = "silence-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _window(minutes_before: float = 1, hours_after: float = 2) -> dict[str, str]:
    now = utcnow()
    return {
        "starts_at": (now - timedelta(minutes=minutes_before)).isoformat(),
        "ends_at": (now + timedelta(hours=hours_after)).isoformat(),
    }


def _alert(service: str, check: str = "health", **fields: Any) -> AlertRaised:
    return AlertRaised(
        service=service,
        check=check,
        summary=f"{service} {check} failing",
        impact="high",
        urgency="high",
        source="api",
        **fields,
    )


async def test_silences_are_made_listed_and_expired_through_the_api_with_an_audit_trail(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(api_token=TOKEN)
    async with running(settings, [build_recorder]) as (client, _):
        body = {
            "matchers": [{"name": "service", "value": "sutazai-postgres", "isRegex": False}],
            "comment": "database upgrade",
            "created_by": "alice",
            **_window(),
        }
        assert (await client.post("/api/v1/silences", json=body)).status_code == 401
        made = await client.post("/api/v1/silences", json=body, headers=AUTH)
        assert made.status_code == 201, made.text
        silence_id = made.json()["id"]

        bad = await client.post(
            "/api/v1/silences",
            json={**body, "matchers": [{"name": "service", "value": "(", "isRegex": True}]},
            headers=AUTH,
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"][:3] == ["body", "matchers", 0]

        # Every Sunday 02:00–04:00 in Berlin, through 2027: pending until the next Sunday.
        weekly = await client.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "service", "value": "backend"}],
                "starts_at": "2026-01-04T01:00:00Z",
                "ends_at": "2028-01-01T00:00:00Z",
                "comment": "weekly maintenance",
                "created_by": "bob",
                "recurrence": {
                    "rrule": "FREQ=WEEKLY;BYDAY=SU",
                    "timezone": "Europe/Berlin",
                    "duration": "PT2H",
                },
            },
            headers=AUTH,
        )
        assert weekly.status_code == 201, weekly.text

        listed = {s["id"]: s for s in (await client.get("/api/v1/silences")).json()}
        once = listed[silence_id]
        assert once["state"] == "active"
        assert once["matchers"] == [
            {"name": "service", "value": "postgres", "isRegex": False, "isEqual": True}
        ]  # canonical service name
        recurring = listed[weekly.json()["id"]]
        assert recurring["recurrence"]["duration"] == "PT2H"
        assert recurring["window"]["ends_at"] > recurring["window"]["starts_at"]
        active = (await client.get("/api/v1/silences", params={"state": "active"})).json()
        assert silence_id in {s["id"] for s in active}

        assert (await client.delete(f"/api/v1/silences/{silence_id}")).status_code == 401
        ended = await client.delete(
            f"/api/v1/silences/{silence_id}", params={"by": "carol"}, headers=AUTH
        )
        assert ended.status_code == 200
        assert ended.json()["state"] == "expired"
        assert ended.json()["expired_by"] == "carol"
        again = await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
        assert again.json()["expired_by"] == "carol"  # over already: nothing changes
        missing = await client.delete("/api/v1/silences/nope", headers=AUTH)
        assert missing.status_code == 404

        detail = (await client.get(f"/api/v1/silences/{silence_id}")).json()
        assert [e["event_type"] for e in detail["history"]] == ["SilenceCreated", "SilenceExpired"]
        assert detail["history"][0]["event"]["by"] == "alice"
        on_stream = [
            e["event_type"]
            for e in await read_stream(redis, INCIDENTS.key)
            if e.get("silence_id") == silence_id
        ]
        assert on_stream == ["SilenceCreated", "SilenceExpired"]


async def test_a_silenced_alert_opens_no_incident_pages_nobody_and_returns_when_expired(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(api_token=TOKEN, triage={"resolve_check_s": 0.1})
    services = [build_triage, build_recorder, build_escalator, build_remediator]
    async with running(settings, services) as (client, runtime):
        bus = runtime.bus("test")
        # An incident open before the silence is not silenced.
        db = _alert("postgres", "connect")
        await bus.publish(db)

        async def incidents(service: str) -> list[dict[str, Any]]:
            found = await client.get("/api/v1/incidents", params={"service": service})
            return list(found.json())

        await eventually(lambda: incidents("postgres"))
        body = {
            "matchers": [{"name": "service", "value": "backend|postgres", "isRegex": True}],
            "comment": "maintenance",
            "created_by": "alice",
            **_window(),
        }
        silence_id = (await client.post("/api/v1/silences", json=body, headers=AUTH)).json()["id"]

        first = _alert("backend")
        repeat = first.model_copy(update={"event_id": _new_id()})
        other = _alert("ollama", "models")
        db_again = db.model_copy(update={"event_id": _new_id()})
        for alert in (first, repeat, other, db_again):
            await bus.publish(alert)
        await eventually(lambda: incidents("ollama"))

        async def silenced() -> list[dict[str, Any]]:
            rows = await read_stream(redis, INCIDENTS.key)
            return [r for r in rows if r["event_type"] == "AlertSilenced"]

        (said,) = await eventually(silenced)  # once, however often the alert repeats
        assert said["silence_id"] == silence_id
        assert said["causation_id"] == first.event_id
        assert said["fingerprint"] == first.fingerprint
        assert await incidents("backend") == []
        assert len(await incidents("postgres")) == 1  # the open one, not a new one

        async def history() -> list[str]:
            detail = (await client.get(f"/api/v1/silences/{silence_id}")).json()
            return [e["event_type"] for e in detail["history"]]

        await eventually(lambda: _has(history, "AlertSilenced"))
        # Nobody is paged and nothing is done for the silenced alert.
        escalations = await read_stream(redis, ESCALATIONS.key)
        assert not [e for e in escalations if "backend" in e.get("reason", "")]

        # Ended early while the alert still fires: it is new from now on.
        await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
        (reopened,) = await eventually(lambda: incidents("backend"), timeout=15)
        assert reopened["severity"] == "P0"
        # Put back with the detector's envelope (sealed by triage): triage knows it under the
        # same fingerprint, so the sender's resolve still ends it.
        assert await redis.get(f"jarvis:triage:fp:{first.fingerprint}") is not None
        alerts = [a for a in await read_stream(redis, ALERTS.key) if a["service"] == "backend"]
        assert len(alerts) == 3  # the alert, its repeat, and the copy put back at expiry
        assert alerts[-1]["fingerprint"] == first.fingerprint
        assert alerts[-1]["event_id"] not in {first.event_id, repeat.event_id}


async def test_a_window_that_ends_brings_back_only_alerts_that_still_fire(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    clock = ManualClock()
    settings = make_settings(api_token=TOKEN, triage={"resolve_check_s": 0.05})
    async with running(settings, [build_triage, build_recorder], clock=clock) as (client, rt):
        now = clock.now()
        body = {
            "matchers": [{"name": "check", "value": "disk"}],
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            "ends_at": (now + timedelta(minutes=30)).isoformat(),
            "created_by": "alice",
        }
        assert (await client.post("/api/v1/silences", json=body, headers=AUTH)).status_code == 201
        still, recovered = _alert("redis", "disk"), _alert("neo4j", "disk")
        bus = rt.bus("test")
        for alert in (still, recovered):
            await bus.publish(alert)
        await eventually(lambda: _count(redis, "AlertSilenced", 2))
        await bus.publish(
            recovered.model_copy(update={"event_id": _new_id(), "status": AlertStatus.RESOLVED})
        )
        await eventually(lambda: _settled_hash(redis, 1))

        clock.advance(timedelta(minutes=31))

        async def opened() -> list[str]:
            listed = (await client.get("/api/v1/incidents")).json()
            return sorted(i["service"] for i in listed)

        assert await eventually(opened) == ["redis"]
        await eventually(lambda: _settled_hash(redis, 0))
        assert await opened() == ["redis"]


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


async def _has(history: Callable[[], Any], kind: str) -> bool:
    return kind in await history()


async def _count(redis: Redis, kind: str, n: int) -> bool:
    return len([r for r in await read_stream(redis, INCIDENTS.key) if r["event_type"] == kind]) == n


async def _settled_hash(redis: Redis, n: int) -> bool:
    return int(await redis.hlen("jarvis:triage:silenced")) == n
