"""PagerDuty Events API v2: validation like PagerDuty's, mapping to AlertRaised."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.detector.pagerduty import PagerDutyError, parse, to_alert
from shared.events import AlertSource, AlertStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "R0UTINGKEY0000000000000000000001"


def _trigger(**payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "db-conn-1",
        "payload": {
            "summary": "PostgreSQL connections exhausted",
            "source": "db01",
            "severity": "critical",
            "timestamp": "2026-03-01T11:59:00.000+00:00",
            "component": "postgres",
            "group": "data",
            "class": "connections",
            "custom_details": {"in_use": 100, "max": 100},
        },
        "links": [{"href": "http://127.0.0.1:10201/d/pg", "text": "dashboard"}],
    }
    body["payload"].update(payload)
    return body


def test_trigger_maps_every_field() -> None:
    event = parse(_trigger())
    alert = to_alert(event, "db-conn-1", NOW)
    assert alert.source is AlertSource.PAGERDUTY
    assert alert.fingerprint == "pagerduty:db-conn-1"
    assert alert.service == "postgres"
    assert alert.check == "connections"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "PostgreSQL connections exhausted"
    assert alert.external_severity == "critical"
    assert alert.starts_at == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert '"in_use": 100' in alert.description
    assert "link: http://127.0.0.1:10201/d/pg" in alert.description
    assert alert.labels == {
        "dedup_key": "db-conn-1",
        "source": "db01",
        "component": "postgres",
        "group": "data",
        "class": "connections",
    }


def test_trigger_without_component_uses_the_source() -> None:
    body = _trigger()
    del body["payload"]["component"], body["payload"]["class"]
    alert = to_alert(parse(body), "k", NOW)
    assert (alert.service, alert.check) == ("db01", "pagerduty")


def test_resolve_matches_the_trigger_fingerprint_and_keeps_its_service() -> None:
    event = parse({"routing_key": KEY, "event_action": "resolve", "dedup_key": "db-conn-1"})
    known = to_alert(event, "db-conn-1", NOW, ("postgres", "connections"))
    assert known.status is AlertStatus.RESOLVED
    assert known.fingerprint == "pagerduty:db-conn-1"
    assert (known.service, known.check) == ("postgres", "connections")
    unknown = to_alert(event, "db-conn-1", NOW)
    assert (unknown.service, unknown.check) == ("pagerduty", "pagerduty")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**_trigger(), "routing_key": ""}, "'routing_key' is missing or blank"),
        ({**_trigger(), "event_action": "explode"}, "'event_action' is missing or invalid"),
        (_trigger(severity="fatal"), "'payload.severity' is missing or invalid"),
        (_trigger(summary=" "), "'payload.summary' is missing or blank"),
        (_trigger(summary="x" * 1025), "'payload.summary' is too long"),
        (_trigger(source=None), "'payload.source' is missing or blank"),
        (_trigger(timestamp="soon"), "'payload.timestamp' is not a valid ISO 8601"),
        ({**_trigger(), "payload": None}, "'payload' is missing"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is required"),
        ({**_trigger(), "dedup_key": 5}, "'dedup_key' must be a string"),
        ([], "must be a JSON object"),
    ],
)
def test_invalid_events_are_refused_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(PagerDutyError) as caught:
        parse(body)
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(PagerDutyError) as caught:
        parse({"routing_key": KEY, "event_action": "trigger", "payload": {}})
    assert len(caught.value.errors) == 3  # summary, source, severity


def test_routing_keys_can_be_restricted() -> None:
    assert parse(_trigger(), [KEY]).action == "trigger"
    with pytest.raises(PagerDutyError, match="not a known integration key"):
        parse(_trigger(), ["another"])
