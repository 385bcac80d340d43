"""Ingress over HTTP into real Redis: our JSON, Alertmanager v4, PagerDuty Events v2, Grafana.
Every accepted alert is on jarvis:alerts before the 2xx; bad bodies name the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from services.triage.main import build as build_triage
from shared.envelope import pagerduty_integration
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running
from tests.integration.detector_stubs import pagerduty_event

pytestmark = pytest.mark.integration

PD_KEY = "R0UTINGKEY0000000000000000000001"
PD_INTEGRATION = pagerduty_integration(PD_KEY)
JSON = {"content-type": "application/json"}


async def _alerts(redis: Redis) -> list[dict[str, Any]]:
    return await read_stream(redis, "jarvis:alerts")


def _am(status: str, *alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}/{severity="critical"}:{alertname="PostgresDown"}',
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "jarvis",
        "groupLabels": {"alertname": "PostgresDown"},
        "commonLabels": {"alertname": "PostgresDown", "severity": "critical"},
        "commonAnnotations": {"summary": "PostgreSQL down"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


def _am_alert(status: str, instance: str, fingerprint: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "PostgresDown",
            "severity": "critical",
            "instance": instance,
            "service": "postgres",
        },
        "annotations": {"summary": f"PostgreSQL on {instance} down"},
        "startsAt": "2026-03-01T11:55:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-01T12:10:00Z",
        "generatorURL": "http://127.0.0.1:10200/graph",
        "fingerprint": fingerprint,
    }


async def test_own_json_batch_is_all_or_nothing(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [build_detector]) as (client, _):
        bad = await client.post(
            "/api/v1/alerts", json=[{"service": "backend"}, {"service": "", "check": "x"}]
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", 1, "service"]
        assert await _alerts(redis) == []
        good = await client.post(
            "/api/v1/alerts", json=[{"service": "backend"}, {"service": "redis", "check": "ping"}]
        )
        assert good.status_code == 202
        assert good.json()["accepted"] == 2
        stored = await _alerts(redis)  # on the stream by the time the 202 arrived
        assert [a["event_id"] for a in stored] == good.json()["event_ids"]
        assert {a["source"] for a in stored} == {"api"}


async def test_bodies_over_the_limit_are_refused(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(detector={"max_body_bytes": 2048})
    big = json.dumps({"service": "backend", "description": "x" * 4000})
    async with running(settings, [build_detector]) as (client, _):
        for path in ("/api/v1/alerts", "/webhooks/alertmanager", "/webhooks/grafana"):
            answer = await client.post(path, content=big, headers=JSON)
            assert answer.status_code == 413, path
        pd = await client.post("/webhooks/pagerduty", content=big, headers=JSON)
        assert pd.status_code == 413
        assert pd.json()["status"] == "invalid event"

        async def chunks() -> Any:  # no Content-Length: the limit still holds while reading
            for _ in range(5):
                yield b"x" * 1000

        streamed = await client.post("/api/v1/alerts", content=chunks(), headers=JSON)
        assert streamed.status_code == 413
    assert await _alerts(redis) == []


async def test_alertmanager_firing_then_resolved_group(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [build_detector]) as (client, _):
        firing = await client.post(
            "/webhooks/alertmanager",
            json=_am(
                "firing",
                _am_alert("firing", "db1", "aaaa000000000001"),
                _am_alert("firing", "db2", "aaaa000000000002"),
                truncated=5,
            ),
        )
        assert firing.status_code == 202
        assert firing.json()["accepted"] == 2
        assert firing.json()["truncated_alerts"] == 5
        resolved = await client.post(
            "/webhooks/alertmanager",
            json=_am(
                "resolved",
                _am_alert("resolved", "db1", "aaaa000000000001"),
                _am_alert("resolved", "db2", "aaaa000000000002"),
            ),
        )
        assert resolved.status_code == 202
        metrics = (await client.get("/metrics")).text
        assert 'jarvis_detector_truncated_alerts_total{source="alertmanager"}' in metrics
    stored = await _alerts(redis)
    # The sender's fingerprints, within the namespace of who sent them (no token: anonymous).
    assert [(a["fingerprint"], a["status"]) for a in stored] == [
        ("ext:anonymous:am:aaaa000000000001", "firing"),
        ("ext:anonymous:am:aaaa000000000002", "firing"),
        ("ext:anonymous:am:aaaa000000000001", "resolved"),
        ("ext:anonymous:am:aaaa000000000002", "resolved"),
    ]
    first = stored[0]
    assert first["source"] == "alertmanager"
    assert first["integration"] == "anonymous"
    assert first["service"] == "postgres"
    assert first["external_severity"] == "critical"
    assert first["group_key"] == '{}/{severity="critical"}:{alertname="PostgresDown"}'
    assert first["ends_at"] is None
    assert stored[2]["ends_at"].startswith("2026-03-01T12:10:00")


async def test_alertmanager_bad_alert_refuses_the_whole_body(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    body = _am("firing", _am_alert("firing", "db1", "a1"), _am_alert("firing", "db2", "a2"))
    del body["alerts"][1]["status"]
    async with running(make_settings(), [build_detector]) as (client, _):
        answer = await client.post("/webhooks/alertmanager", json=body)
        not_json = await client.post("/webhooks/alertmanager", content=b"{oops", headers=JSON)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "alerts", 1, "status"]
    assert not_json.status_code == 422
    assert "invalid JSON" in not_json.json()["detail"][0]["msg"]
    assert await _alerts(redis) == []


async def test_grafana_alerting_then_ok(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    def body(state: str, status: str) -> dict[str, Any]:
        return {
            "receiver": "jarvis",
            "status": status,
            "orgId": 1,
            "version": "1",
            "state": state,
            "title": f"[{status.upper()}:1] HighMemory",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
            "message": "",
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": "HighMemory", "service": "ollama"},
                    "annotations": {"summary": "Ollama memory above 80%"},
                    "startsAt": "2026-03-01T11:50:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "values": {"A": 91.2},
                    "fingerprint": "feedbeef00000001",
                    "dashboardURL": "",
                    "panelURL": "",
                    "generatorURL": "",
                }
            ],
        }

    async with running(make_settings(), [build_detector]) as (client, _):
        assert (
            await client.post("/webhooks/grafana", json=body("alerting", "firing"))
        ).status_code == 202
        assert (
            await client.post("/webhooks/grafana", json=body("ok", "resolved"))
        ).status_code == 202
        bad = await client.post("/webhooks/grafana", json={"state": "alerting"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "alerts"]
    stored = await _alerts(redis)
    assert [(a["fingerprint"], a["status"]) for a in stored] == [
        ("ext:anonymous:grafana:feedbeef00000001", "firing"),
        ("ext:anonymous:grafana:feedbeef00000001", "resolved"),
    ]
    assert stored[0]["source"] == "grafana"
    assert stored[0]["external_severity"] == "alerting"


def _pd(action: str, dedup_key: str | None = None, **payload: Any) -> dict[str, Any]:
    return pagerduty_event(action, dedup_key, PD_KEY, **{"class": "health", **payload})


async def _post_pd(
    client: httpx.AsyncClient, body: Any, path: str = "/webhooks/pagerduty"
) -> httpx.Response:
    return await client.post(path, json=body)


async def test_pagerduty_trigger_ack_resolve_through_triage(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [build_detector, build_triage]) as (client, _):
        trigger = await _post_pd(
            client, _pd("trigger", "backend-down-1"), "/webhooks/pagerduty/v2/enqueue"
        )
        assert trigger.status_code == 202
        assert trigger.json() == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "backend-down-1",
        }
        opened = await eventually(lambda: read_stream(redis, "jarvis:severity"))
        incident_id = opened[0]["incident_id"]
        ack = await _post_pd(client, _pd("acknowledge", "backend-down-1"))
        assert ack.status_code == 202
        acks = await eventually(lambda: read_stream(redis, "jarvis:incidents"))
        resolve = await _post_pd(client, _pd("resolve", "backend-down-1"))
        assert resolve.status_code == 202
        assert resolve.json()["dedup_key"] == "backend-down-1"
    assert acks[0]["event_type"] == "IncidentAcknowledged"
    assert acks[0]["incident_id"] == incident_id
    assert acks[0]["by"] == "pagerduty"
    stored = await _alerts(redis)
    assert [(a["status"], a["service"], a["check"]) for a in stored] == [
        ("firing", "backend", "health"),
        ("resolved", "backend", "health"),
    ]
    assert (
        stored[0]["fingerprint"]
        == stored[1]["fingerprint"]
        == f"ext:{PD_INTEGRATION}:pagerduty:backend-down-1"
    )
    assert stored[0]["integration"] == PD_INTEGRATION
    assert stored[0]["external_severity"] == "critical"


async def test_pagerduty_unknown_keys_are_answered_and_open_nothing(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [build_detector, build_triage]) as (client, _):
        resolve = await _post_pd(client, _pd("resolve", "never-triggered"))
        ack = await _post_pd(client, _pd("acknowledge", "never-triggered-either"))
        generated = await _post_pd(client, _pd("trigger", None, severity="info"))
        # Triage has consumed everything once the generated trigger opened its incident.
        await eventually(lambda: read_stream(redis, "jarvis:severity"))
        severity = await read_stream(redis, "jarvis:severity")
    assert resolve.status_code == ack.status_code == generated.status_code == 202
    assert resolve.json()["dedup_key"] == "never-triggered"
    key = generated.json()["dedup_key"]
    assert len(key) == 32
    assert [s["fingerprint"] for s in severity] == [f"ext:{PD_INTEGRATION}:pagerduty:{key}"]
    assert await read_stream(redis, "jarvis:incidents") == []
    stored = await _alerts(redis)
    assert [(a["status"], a["service"]) for a in stored] == [
        ("resolved", "pagerduty"),
        ("firing", "backend"),
    ]


async def test_pagerduty_invalid_events_answer_like_pagerduty(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(detector={"pagerduty_routing_keys": [PD_KEY]})
    async with running(settings, [build_detector]) as (client, _):
        bad = await _post_pd(client, _pd("trigger", "k", severity="disaster", summary=""))
        wrong_key = await _post_pd(client, {**_pd("trigger", "k"), "routing_key": "nope"})
        not_json = await client.post("/webhooks/pagerduty", content=b"not json", headers=JSON)
        plain = await client.post("/webhooks/pagerduty", content=b"{}")
    assert bad.status_code == 400
    assert bad.json()["status"] == "invalid event"
    assert bad.json()["message"] == "Event object is invalid"
    assert any("payload.severity" in e for e in bad.json()["errors"])
    assert any("payload.summary" in e for e in bad.json()["errors"])
    assert wrong_key.status_code == 400
    assert "routing_key" in wrong_key.json()["errors"][0]
    assert not_json.status_code == 400
    assert "invalid JSON" in not_json.json()["errors"][0]
    assert plain.status_code == 415
    assert plain.json()["status"] == "invalid event"
    assert await _alerts(redis) == []
