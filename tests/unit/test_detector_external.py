"""Mapping other systems' alerts to AlertRaised: Alertmanager, Grafana, Prometheus' API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.detector.external import (
    PayloadError,
    from_alertmanager,
    from_grafana,
    from_grafana_api,
    from_prometheus_api,
    label_fingerprint,
    service_of,
)
from shared.events import AlertSource, AlertStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SERVICE_LABELS = ["service", "job", "container", "instance"]


def _am_alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "BackendDown", "service": "backend", "severity": "critical"},
        "annotations": {"summary": "Backend is down", "description": "5xx for 5 minutes"},
        "startsAt": "2026-03-01T11:55:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:10200/graph?g0.expr=up",
        "fingerprint": "c6fb1a5b4ba3a1f2",
    }
    alert.update(overrides)
    return alert


def _am_body(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="BackendDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "jarvis",
        "groupLabels": {"alertname": "BackendDown"},
        "commonLabels": {"alertname": "BackendDown"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }
    body.update(overrides)
    return body


def test_label_fingerprint_matches_prometheus() -> None:
    # Values from prometheus/common's model tests (LabelsToSignature / Fingerprint).
    assert label_fingerprint({}) == f"{14695981039346656037:016x}"
    labels = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(label_fingerprint(labels), 16) == 5799056148416392346


def test_service_comes_from_the_first_label_present() -> None:
    assert service_of({"job": "node", "instance": "x"}, SERVICE_LABELS, "am") == "node"
    assert service_of({"service": "", "instance": "x"}, SERVICE_LABELS, "am") == "x"
    assert service_of({}, SERVICE_LABELS, "am") == "am"


def test_alertmanager_firing_alert_keeps_fingerprint_severity_and_group_key() -> None:
    alerts, truncated = from_alertmanager(_am_body(_am_alert()), SERVICE_LABELS, NOW)
    assert truncated == 0
    [alert] = alerts
    assert alert.source is AlertSource.ALERTMANAGER
    assert alert.fingerprint == "am:c6fb1a5b4ba3a1f2"
    assert alert.service == "backend"
    assert alert.check == "BackendDown"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "Backend is down"
    assert "5xx for 5 minutes" in alert.description
    assert "graph?g0.expr=up" in alert.description
    assert alert.external_severity == "critical"
    assert alert.group_key == '{}:{alertname="BackendDown"}'
    assert alert.starts_at == datetime(2026, 3, 1, 11, 55, 0, 123456, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time means "no end"
    assert alert.occurred_at == NOW


def test_alertmanager_resolved_group_resolves_with_the_same_fingerprint() -> None:
    firing, _ = from_alertmanager(_am_body(_am_alert()), SERVICE_LABELS, NOW)
    resolved, _ = from_alertmanager(
        _am_body(_am_alert("resolved", endsAt="2026-03-01T12:05:00Z"), status="resolved"),
        SERVICE_LABELS,
        NOW,
    )
    assert resolved[0].status is AlertStatus.RESOLVED
    assert resolved[0].fingerprint == firing[0].fingerprint
    assert resolved[0].ends_at == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def test_alertmanager_mixed_group_and_truncated_alerts() -> None:
    other = _am_alert(
        "resolved",
        labels={"alertname": "DiskFull", "instance": "db:9100"},
        fingerprint="",
        annotations={},
    )
    alerts, truncated = from_alertmanager(
        _am_body(_am_alert(), other, truncatedAlerts=3), SERVICE_LABELS, NOW
    )
    assert truncated == 3
    assert [a.status for a in alerts] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    # No fingerprint sent: the label fingerprint Alertmanager itself would compute.
    assert alerts[1].fingerprint == "am:" + label_fingerprint(other["labels"])
    assert alerts[1].service == "db:9100"
    assert alerts[1].summary == "DiskFull"
    assert alerts[1].external_severity is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_am_body(_am_alert(status="exploded")), "alerts.0.status"),
        (_am_body(_am_alert(labels={})), "alerts.0.labels"),
        (_am_body(_am_alert(startsAt="yesterday")), "alerts.0.startsAt"),
        (_am_body(_am_alert(), version="3"), "version"),
        ({"status": "firing"}, "alerts"),
        ([1, 2], ""),
    ],
)
def test_alertmanager_bad_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        from_alertmanager(body, SERVICE_LABELS, NOW)
    locations = [".".join(map(str, e["loc"][1:])) for e in caught.value.errors]
    assert field in locations


def _grafana_body(state: str = "alerting", status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "jarvis",
        "status": status,
        "orgId": 1,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "HighCPU", "container": "sutazai-ollama"},
                "annotations": {"summary": "CPU above 80%"},
                "startsAt": "2026-03-01T11:58:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-01T12:01:00Z",
                "values": {"B": 93.5, "C": 1},
                "valueString": "[ var='B' value=93.5 ]",
                "generatorURL": "http://127.0.0.1:10201/alerting/grafana/x/view",
                "fingerprint": "0a1b2c3d4e5f6789",
                "dashboardURL": "http://127.0.0.1:10201/d/abc",
                "panelURL": "http://127.0.0.1:10201/d/abc?viewPanel=2",
            }
        ],
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:10201/",
        "version": "1",
        "groupKey": '{}:{alertname="HighCPU"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] HighCPU",
        "state": state,
        "message": "CPU is high",
    }


def test_grafana_alerting_and_ok_states() -> None:
    [firing], _ = from_grafana(_grafana_body(), SERVICE_LABELS, NOW)
    assert firing.source is AlertSource.GRAFANA
    assert firing.fingerprint == "grafana:0a1b2c3d4e5f6789"
    assert firing.service == "sutazai-ollama"
    assert firing.status is AlertStatus.FIRING
    assert firing.external_severity == "alerting"
    assert "B=93.5" in firing.description
    assert "viewPanel=2" in firing.description
    [ok], _ = from_grafana(_grafana_body("ok", "resolved"), SERVICE_LABELS, NOW)
    assert ok.status is AlertStatus.RESOLVED
    assert ok.fingerprint == firing.fingerprint
    assert ok.ends_at == datetime(2026, 3, 1, 12, 1, tzinfo=UTC)


def test_grafana_state_ok_resolves_alerts_without_their_own_status() -> None:
    body = _grafana_body("ok", "resolved")
    del body["status"]
    del body["alerts"][0]["status"]
    [alert], _ = from_grafana(body, SERVICE_LABELS, NOW)
    assert alert.status is AlertStatus.RESOLVED


def test_grafana_bad_version_is_named() -> None:
    with pytest.raises(PayloadError, match="version"):
        from_grafana({**_grafana_body(), "version": "2"}, SERVICE_LABELS, NOW)


def test_prometheus_api_keeps_only_firing_alerts_with_alertmanager_fingerprints() -> None:
    labels = {"alertname": "PostgresDown", "job": "postgres", "severity": "critical"}
    body = {
        "status": "success",
        "data": {
            "alerts": [
                {
                    "labels": labels,
                    "annotations": {"summary": "pg down"},
                    "state": "firing",
                    "activeAt": "2026-03-01T11:00:00.60602144+02:00",
                    "value": "1e+00",
                },
                {
                    "labels": {"alertname": "Slow"},
                    "annotations": {},
                    "state": "pending",
                    "activeAt": "2026-03-01T11:00:00Z",
                    "value": "1",
                },
            ]
        },
    }
    firing = from_prometheus_api(body, SERVICE_LABELS, NOW, sender="prometheus")
    assert list(firing) == ["am:" + label_fingerprint(labels)]
    alert = firing["am:" + label_fingerprint(labels)]
    assert alert.service == "postgres"
    assert alert.check == "PostgresDown"
    assert alert.external_severity == "critical"
    assert alert.starts_at == datetime(2026, 3, 1, 9, 0, 0, 606021, tzinfo=UTC)
    with pytest.raises(PayloadError, match="status"):
        from_prometheus_api({"status": "error"}, SERVICE_LABELS, NOW, sender="prometheus")


def test_grafana_legacy_api_and_unified_shape() -> None:
    legacy = [
        {
            "id": 7,
            "name": "Backend latency",
            "state": "alerting",
            "dashboardUid": "abc",
            "newStateDate": "2026-03-01T11:00:00Z",
            "url": "/d/abc/jarvis",
        },
        {"id": 8, "name": "Quiet", "state": "ok"},
    ]
    firing = from_grafana_api(legacy, SERVICE_LABELS, NOW)
    assert list(firing) == ["grafana:rule:7"]
    assert firing["grafana:rule:7"].check == "Backend latency"
    unified = {
        "status": "success",
        "data": {"alerts": [{"labels": {"alertname": "X"}, "state": "firing"}]},
    }
    assert list(from_grafana_api(unified, SERVICE_LABELS, NOW)) == [
        "grafana:" + label_fingerprint({"alertname": "X"})
    ]
    with pytest.raises(PayloadError, match=r"body\.0\.state"):
        from_grafana_api([{"id": 1}], SERVICE_LABELS, NOW)
