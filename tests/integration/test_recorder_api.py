"""The recorder's HTTP API on SQLite and PostgreSQL, fed through real Redis streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.recorder.main import build as build_recorder
from shared.events import ActionRequested, Event
from shared.settings import ConfigError, Settings
from shared.streams import INCIDENTS
from tests.helpers import read_stream, recorded, running
from tests.recorder_events import acked, alert, assigned, at, new_id

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


def _opening(incident_id: str, severity: str = "P1", service: str = "backend") -> list[Event]:
    cause = alert(service)
    return [cause, assigned(cause, incident_id, severity)]


async def test_reads_list_detail_timeline_stats_and_postmortem(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        first, second = new_id(), new_id()
        one = _opening(first, "P1")
        await recorded(runtime, client, *one, acked(first, minute=10))
        await recorded(runtime, client, *_opening(second, "P3", "ollama"))
        # Redelivery through the stream: the same events again change nothing.
        await runtime.bus("test").publish_many(one)

        listed = await client.get("/api/v1/incidents", params={"limit": 1})
        assert listed.status_code == 200
        assert listed.headers["x-total-count"] == "2"
        assert len(listed.json()) == 1
        by_service = await client.get("/api/v1/incidents", params={"service": "ollama"})
        assert [i["id"] for i in by_service.json()] == [second]
        acknowledged = await client.get("/api/v1/incidents", params={"status": "acknowledged"})
        assert [i["id"] for i in acknowledged.json()] == [first]
        bad = await client.get("/api/v1/incidents", params={"severity": "P9"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "severity"]

        detail = (await client.get(f"/api/v1/incidents/{first}")).json()
        assert detail["status"] == "acknowledged"
        assert detail["acknowledged_at"].startswith(at(10).isoformat()[:16])
        assert [h["severity"] for h in detail["severity_history"]] == ["P1"]
        assert detail["alert_count"] == 1

        timeline = (await client.get(f"/api/v1/incidents/{first}/timeline")).json()
        assert [e["event_type"] for e in timeline] == [
            "AlertRaised",
            "SeverityAssigned",
            "IncidentAcknowledged",
        ]
        assert timeline[0]["effects"] == [timeline[1]["event_id"]]
        assert timeline[1]["causation_id"] == timeline[0]["event_id"]
        assert timeline[0]["occurrences"]["count"] == 1

        stats = (await client.get("/api/v1/stats")).json()
        assert stats["incidents"] == 2
        assert stats["by_severity"]["P1"]["mtta_s"] == 600.0
        assert stats["by_severity"]["P3"]["mtta_s"] is None
        assert stats["by_service"] == {"backend": 1, "ollama": 1}

        report = await client.get(f"/api/v1/incidents/{first}/postmortem")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/markdown")
        assert report.text.startswith(f"# Post-Incident Review: {first}")
        for missing in ("/timeline", "/postmortem", ""):
            gone = await client.get(f"/api/v1/incidents/{new_id()}{missing}")
            assert gone.status_code == 404
            assert "incident_id" in gone.json()["detail"]


async def test_operator_commands_publish_events_and_show_on_the_timeline(
    database_url: str, make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        request = ActionRequested(
            incident_id=incident, action="docker.volume_prune", dangerous=True, producer="triage"
        )
        await recorded(runtime, client, *_opening(incident), request)

        calls: list[tuple[str, dict[str, Any] | None, str]] = [
            (f"/api/v1/incidents/{incident}/ack", {"by": "alice"}, "IncidentAcknowledged"),
            (
                f"/api/v1/incidents/{incident}/roles",
                {"role": "incident_commander", "person": "alice"},
                "RoleAssigned",
            ),
            (f"/api/v1/incidents/{incident}/notes", {"text": "pool full"}, "NoteAdded"),
            (
                f"/api/v1/actions/{request.action_id}/approve",
                {"by": "alice", "action": "docker.volume_prune"},
                "ActionApproved",
            ),
            (
                f"/api/v1/incidents/{incident}/resolve",
                {"note": "restarted postgres"},
                "IncidentResolved",
            ),
        ]
        published: dict[str, str] = {}
        for path, body, event_type in calls:
            answer = await client.post(path, json=body)
            assert answer.status_code == 202, answer.text
            assert answer.json()["event_type"] == event_type
            assert answer.json()["stream"] == INCIDENTS.key
            published[event_type] = answer.json()["event_id"]

        on_stream = {e["event_id"]: e for e in await read_stream(redis, INCIDENTS.key)}
        assert set(published.values()) <= set(on_stream)
        approval = on_stream[published["ActionApproved"]]
        assert approval["action_id"] == request.action_id
        assert approval["causation_id"] == request.event_id
        assert approval["incident_id"] == incident
        assert approval["approver"] == "alice"
        assert approval["signature"]  # signed: the remediator acts on nothing else

        detail = (await client.get(f"/api/v1/incidents/{incident}")).json()
        assert detail["status"] == "resolved"
        assert detail["resolution_note"] == "restarted postgres"
        assert detail["roles"]["incident_commander"] == "alice"
        timeline = (await client.get(f"/api/v1/incidents/{incident}/timeline")).json()
        assert set(published.values()) <= {e["event_id"] for e in timeline}

        again = await client.post(f"/api/v1/incidents/{incident}/ack", json={})
        assert again.status_code == 409
        for path in ("ack", "resolve", "notes", "roles"):
            body = {"text": "x"} if path == "notes" else None
            if path == "roles":
                body = {"role": "technical_lead", "person": "bob"}
            missing = await client.post(f"/api/v1/incidents/{new_id()}/{path}", json=body)
            assert missing.status_code == 404, path
        unknown = await client.post(
            f"/api/v1/actions/{new_id()}/approve", json={"by": "bob", "action": "redis.flushdb"}
        )
        assert unknown.status_code == 404
        assert "action_id" in unknown.json()["detail"]


async def test_bodies_are_validated_size_limited_and_idempotent_by_key(
    database_url: str, make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(database_url=database_url, recorder={"max_body_bytes": 2048})
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        await recorded(runtime, client, *_opening(incident))
        notes = f"/api/v1/incidents/{incident}/notes"
        wrong_role = await client.post(
            f"/api/v1/incidents/{incident}/roles", json={"role": "king", "person": "x"}
        )
        assert wrong_role.status_code == 422
        assert wrong_role.json()["detail"][0]["loc"] == ["body", "role"]
        extra = await client.post(notes, json={"text": "a", "colour": "red"})
        assert extra.status_code == 422
        assert extra.json()["detail"][0]["loc"] == ["body", "colour"]
        empty = await client.post(notes, json={"text": ""})
        assert empty.status_code == 422
        huge = await client.post(notes, json={"text": "x" * 5000})
        assert huge.status_code == 413
        assert "body" in huge.json()["detail"]

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 512  # no Content-Length: counted while it streams

        streamed = await client.post(
            notes, content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413

        key = {"Idempotency-Key": "retry-1"}
        one = await client.post(notes, json={"text": "once"}, headers=key)
        two = await client.post(notes, json={"text": "once"}, headers=key)
        assert one.json()["event_id"] == two.json()["event_id"]
        timeline = (await client.get(f"/api/v1/incidents/{incident}/timeline")).json()
        assert [e["event"].get("text") for e in timeline].count("once") == 1
        assert not [
            e for e in await read_stream(redis, INCIDENTS.key) if e.get("text") == "x" * 5000
        ]


async def test_write_endpoints_need_the_bearer_token_when_one_is_set(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = make_settings(api_token=TOKEN)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        await recorded(runtime, client, *_opening(incident))
        path = f"/api/v1/incidents/{incident}/notes"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await client.post(path, json={"text": "hi"}, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in refused.json()["detail"]
        allowed = await client.post(
            path, json={"text": "hi"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 202
        reads = await client.get(f"/api/v1/incidents/{incident}/timeline")
        assert reads.status_code == 200


async def test_the_recorder_refuses_a_public_address_without_a_token(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match="JARVIS_API_TOKEN"):
        async with running(make_settings(http_host="0.0.0.0"), [build_recorder]):
            pass
    async with running(make_settings(http_host="0.0.0.0", api_token=TOKEN), [build_recorder]) as (
        client,
        _,
    ):
        # Listening beyond loopback, reads want the token too.
        assert (await client.get("/health")).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/health", headers=bearer)).status_code == 200
