"""`trusted_json`: the JSON of an event a service made of values it has validated already,
without validating them again, is exactly what the validated model writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.events import (
    AlertCorrelated,
    AlertStatus,
    Event,
    Level,
    NoteAdded,
    Severity,
    SeverityAssigned,
    trusted_json,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ID = "0b6f3d64-3b8e-4f5e-9a3c-1f6f0e1c2a77"

_SEVERITY: dict[str, Any] = {
    "event_id": ID,
    "occurred_at": T0,
    "producer": "triage",
    "incident_id": ID,
    "correlation_id": ID,
    "causation_id": ID,
    "severity": Severity.P1,
    "previous_severity": None,
    "impact": Level.HIGH,
    "urgency": Level.LOW,
    "response_due_at": T0 + timedelta(minutes=15),
    "opened_at": T0,
    "reason": 'rule "database failure" — dépendance ✓ \u2028 \t',
    "fingerprint": "fp-1",
    "service": "postgres",
    "title": "postgres: connect",
    "services": ["postgres", "backend"],
    "playbook": None,
    "data_loss": True,
    "security": False,
    "root_cause": "postgres",
    "drill_id": None,
}
_CORRELATED: dict[str, Any] = {
    "event_id": ID,
    "occurred_at": T0,
    "producer": "triage",
    "incident_id": ID,
    "correlation_id": ID,
    "causation_id": ID,
    "fingerprint": "fp-2",
    "service": "backend",
    "status": AlertStatus.RESOLVED,
    "reason": "recovery; probable root cause: postgres",
}


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (SeverityAssigned, _SEVERITY),
        (SeverityAssigned, {**_SEVERITY, "previous_severity": Severity.P3, "playbook": "p"}),
        (AlertCorrelated, _CORRELATED),
        (NoteAdded, {"event_id": ID, "occurred_at": T0, "incident_id": ID, "text": "a note"}),
    ],
)
def test_the_same_json_as_the_validated_event(cls: type[Event], values: dict[str, Any]) -> None:
    assert trusted_json(cls, **values) == cls(**values).to_json()


def test_fields_not_given_take_the_models_defaults() -> None:
    values = {k: v for k, v in _CORRELATED.items() if k not in ("occurred_at", "reason")}
    data = json.loads(trusted_json(AlertCorrelated, **values))
    assert data["reason"] == ""
    assert data["schema_version"] == 1
    assert data["event_type"] == "AlertCorrelated"
    assert datetime.fromisoformat(data["occurred_at"]) - datetime.now(UTC) < timedelta(seconds=5)
    assert AlertCorrelated.model_validate(data).fingerprint == "fp-2"


def test_a_name_that_is_not_a_field_or_a_missing_required_one_is_refused() -> None:
    with pytest.raises(TypeError, match="not fields: \\['fingerprnt'\\]"):
        trusted_json(AlertCorrelated, **{**_CORRELATED, "fingerprnt": "typo"})
    missing = {k: v for k, v in _CORRELATED.items() if k != "service"}
    with pytest.raises(TypeError, match="service is required"):
        trusted_json(AlertCorrelated, **missing)
