"""What comes from outside is a claim, not an identity (issue 18, finding 3): senders set
`event_id`, `incident_id`, `producer`, `source`, `occurred_at`, and with them erased real
events, wrote into any incident's timeline and resolved live outages. Each test replays the
attack, over HTTP and straight onto the stream, against the real pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from services.recorder.main import build as build_recorder
from services.triage.main import build as build_triage
from services.triage.outbox import derived_id
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running, settled

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789"
ALICE = "alice-integration-token-01"
MALLORY = "mallory-integration-token-1"
FAST = {"quiet_period_s": 0.3, "resolve_check_s": 0.05, "playbooks_enabled": False}


def _settings(make_settings: Callable[..., Settings], **extra: Any) -> Settings:
    return make_settings(
        api_token=TOKEN,
        detector={"ingest_tokens": {"alice": ALICE, "mallory": MALLORY}},
        triage=FAST,
        **extra,
    )


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _incidents(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/incidents", params=query)
    return list(answer.json())


async def _status_is(client: httpx.AsyncClient, incident_id: str, status: str) -> bool:
    detail = (await client.get(f"/api/v1/incidents/{incident_id}")).json()
    return bool(detail["status"] == status)


async def _timeline(client: httpx.AsyncClient, incident_id: str) -> list[dict[str, Any]]:
    return list((await client.get(f"/api/v1/incidents/{incident_id}/timeline")).json())


async def test_sender_ids_cannot_erase_the_auto_resolution_of_an_incident(
    make_settings: Callable[..., Settings],
) -> None:
    """An alert posted with the id triage would give the auto-resolution (derived from the
    incident id, which the timeline shows) made the recorder drop the real one as a
    duplicate: the incident stayed "mitigated" for ever."""
    async with running(
        _settings(make_settings), [build_detector, build_triage, build_recorder]
    ) as (client, _):
        firing = {"service": "backend", "check": "health", "fingerprint": "b-1"}
        assert (await client.post("/api/v1/alerts", json=firing, headers=_as(ALICE))).is_success
        (incident,) = await eventually(lambda: _incidents(client))
        future = derived_id(incident["id"], "auto-resolved")
        decoy = {"service": "loki", "check": "x", "event_id": future}  # unrelated to backend
        assert (await client.post("/api/v1/alerts", json=decoy, headers=_as(MALLORY))).is_success
        resolved = {**firing, "status": "resolved"}
        assert (await client.post("/api/v1/alerts", json=resolved, headers=_as(ALICE))).is_success

        await eventually(lambda: _status_is(client, incident["id"], "resolved"))
        timeline = await _timeline(client, incident["id"])
    resolution = [e for e in timeline if e["event_type"] == "IncidentResolved"]
    assert [e["event_id"] for e in resolution] == [future]  # triage's own id is intact


async def test_sender_ids_cannot_take_the_id_of_a_severity_decision(
    make_settings: Callable[..., Settings],
) -> None:
    """A first alert carrying the id triage derives for the SeverityAssigned of a second
    alert made the recorder drop that decision: the P0 answered 404."""
    victim_id = "11111111-2222-4333-8444-555555555555"
    async with running(
        _settings(make_settings), [build_detector, build_triage, build_recorder]
    ) as (client, _):
        decoy = {"service": "loki", "check": "x", "event_id": derived_id(victim_id, "severity")}
        assert (await client.post("/api/v1/alerts", json=decoy, headers=_as(MALLORY))).is_success
        await eventually(lambda: _incidents(client))
        p0 = {
            "service": "backend",
            "check": "health",
            "impact": "high",
            "urgency": "high",
            "event_id": victim_id,
        }
        assert (await client.post("/api/v1/alerts", json=p0, headers=_as(MALLORY))).is_success
        (found,) = await eventually(lambda: _incidents(client, severity="P0"))
        detail = await client.get(f"/api/v1/incidents/{found['id']}")
    assert detail.status_code == 200
    assert detail.json()["service"] == "backend"


async def test_a_sender_cannot_write_into_another_incident(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """`incident_id` pushed text into any incident's timeline, shown as producer triage."""
    async with running(
        _settings(make_settings), [build_detector, build_triage, build_recorder]
    ) as (client, _):
        real = {"service": "backend", "check": "health", "summary": "real outage"}
        assert (await client.post("/api/v1/alerts", json=real, headers=_as(ALICE))).is_success
        (victim,) = await eventually(lambda: _incidents(client))
        forged = {
            "service": "loki",
            "check": "ingest",
            "summary": "all fine, stop working on it",
            "incident_id": victim["id"],
            "correlation_id": victim["id"],
            "producer": "triage",
            "source": "probe",
        }
        answer = await client.post("/api/v1/alerts", json=forged, headers=_as(MALLORY))
        assert answer.is_success
        # Straight onto the stream, as another system would.
        await redis.xadd("jarvis:alerts", {"__data__": json.dumps(forged)})
        await eventually(lambda: settled(redis, "jarvis:alerts"))
        timeline = await _timeline(client, victim["id"])
    texts = [e["event"].get("summary") for e in timeline]
    assert "all fine, stop working on it" not in texts
    stored = [a for a in await read_stream(redis, "jarvis:alerts") if a.get("service") == "loki"]
    # What the detector stored is the server's envelope, not the claim.
    assert stored[0]["producer"] == "detector"
    assert stored[0]["source"] == "api"
    assert stored[0]["incident_id"] is None
    assert stored[0]["integration"] == "mallory"


async def test_a_sender_can_only_resolve_what_it_raised(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """A forged `status: resolved` with a victim's fingerprint (readable from the open
    timeline) auto-resolved a live outage."""
    async with running(
        _settings(make_settings), [build_detector, build_triage, build_recorder]
    ) as (client, _):
        outage = {"service": "postgres", "check": "ping", "fingerprint": "pg-down"}
        assert (await client.post("/api/v1/alerts", json=outage, headers=_as(ALICE))).is_success
        (incident,) = await eventually(lambda: _incidents(client))
        (alert,) = [
            e for e in await _timeline(client, incident["id"]) if e["event_type"] == "AlertRaised"
        ]
        shown = alert["event"]["fingerprint"]
        for fingerprint in ("pg-down", shown):
            forged = {**outage, "fingerprint": fingerprint, "status": "resolved"}
            answer = await client.post("/api/v1/alerts", json=forged, headers=_as(MALLORY))
            assert answer.is_success
            await redis.xadd("jarvis:alerts", {"__data__": json.dumps(forged)})
        await eventually(lambda: settled(redis, "jarvis:alerts"))
        # Long past the quiet period: had anything matched, triage would have resolved it.
        await asyncio.sleep(0.6)
        still = (await client.get(f"/api/v1/incidents/{incident['id']}")).json()
        mine = {**outage, "status": "resolved"}
        assert (await client.post("/api/v1/alerts", json=mine, headers=_as(ALICE))).is_success

        await eventually(lambda: _status_is(client, incident["id"], "resolved"))
    assert still["status"] == "open"


async def test_a_sender_id_is_an_idempotency_key_within_its_integration(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(_settings(make_settings), [build_detector]) as (client, _):
        alert = {"service": "backend", "event_id": "retry-1"}
        one = await client.post("/api/v1/alerts", json=alert, headers=_as(ALICE))
        again = await client.post("/api/v1/alerts", json=alert, headers=_as(ALICE))
        other = await client.post("/api/v1/alerts", json=alert, headers=_as(MALLORY))
    assert one.json()["event_ids"] == again.json()["event_ids"]
    assert one.json()["event_ids"] != other.json()["event_ids"]
    assert "retry-1" not in one.json()["event_ids"]
    stored = await read_stream(redis, "jarvis:alerts")
    assert [a["event_id"] for a in stored] == [
        *one.json()["event_ids"],
        *again.json()["event_ids"],
        *other.json()["event_ids"],
    ]


async def test_the_senders_time_is_a_claim(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(_settings(make_settings), [build_detector]) as (client, _):
        claim = {"service": "backend", "occurred_at": "2001-01-01T00:00:00Z"}
        assert (await client.post("/api/v1/alerts", json=claim, headers=_as(ALICE))).is_success
    (stored,) = await read_stream(redis, "jarvis:alerts")
    assert not stored["occurred_at"].startswith("2001")
    assert stored["starts_at"].startswith("2001-01-01T00:00:00")
