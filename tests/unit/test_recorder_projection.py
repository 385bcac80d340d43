"""The incident projection's decisions, and the MTTA/MTTR arithmetic (no I/O)."""

from __future__ import annotations

import pytest

from services.recorder import projection
from services.recorder.stats import IncidentTimes, by_severity, by_status
from shared.events import RoleAssigned, SeverityAssigned
from tests.recorder_events import T0, acked, alert, assigned, at, correlated, new_id, resolved

pytestmark = pytest.mark.unit


class _WithRootCause(SeverityAssigned):
    root_cause: str | None = None


def _opened(severity: str = "P2") -> tuple[str, projection.IncidentRow]:
    incident_id = new_id()
    first = alert()
    return incident_id, projection.open_incident(assigned(first, incident_id, severity), T0)


def test_opening_takes_severity_services_and_times_from_severity_assigned() -> None:
    incident_id, row = _opened("P1")
    assert (row.id, row.status, row.severity, row.opened_at) == (incident_id, "open", "P1", T0)
    assert row.services == ["backend"]
    assert row.root_cause is None


def test_severity_only_rises_and_services_accumulate() -> None:
    incident_id, row = _opened("P2")
    other = alert("ollama")
    assert projection.apply(row, assigned(other, incident_id, "P0", previous="P2"))
    assert row.severity == "P0"
    assert row.services == ["backend", "ollama"]
    assert not projection.apply(row, assigned(alert(), incident_id, "P3"))
    assert row.severity == "P0"


def test_root_cause_is_read_when_triage_sends_one_and_absent_otherwise() -> None:
    incident_id, row = _opened()
    cause = alert()
    base = assigned(cause, incident_id).model_dump()
    assert projection.root_cause_of(SeverityAssigned.model_validate(base)) is None
    with_cause = _WithRootCause.model_validate({**base, "root_cause": "postgres down"})
    assert projection.apply(row, with_cause)
    assert row.root_cause == "postgres down"


def test_status_moves_through_acknowledged_mitigated_and_resolved() -> None:
    incident_id, row = _opened()
    first = alert()
    assert projection.apply(row, acked(incident_id, minute=5))
    assert (row.status, row.acknowledged_at) == ("acknowledged", at(5))
    recovery = alert(fingerprint=first.fingerprint, status="resolved", minute=20)
    assert projection.apply(row, correlated(recovery, incident_id, minute=20))
    assert (row.status, row.mitigated_at) == ("mitigated", at(20))
    refire = alert(fingerprint=first.fingerprint, minute=25)
    assert projection.apply(row, correlated(refire, incident_id, minute=25))
    assert (row.status, row.mitigated_at) == ("acknowledged", None)
    assert projection.apply(row, resolved(incident_id, minute=60, note="fixed"))
    assert (row.status, row.resolved_at, row.resolution_note) == ("resolved", at(60), "fixed")
    assert not projection.apply(row, resolved(incident_id, minute=70))
    assert row.resolved_at == at(60)


def test_a_late_acknowledgement_keeps_a_resolved_incident_resolved() -> None:
    incident_id, row = _opened()
    projection.apply(row, resolved(incident_id, minute=30))
    assert projection.apply(row, acked(incident_id, minute=10))
    assert (row.status, row.acknowledged_at) == ("resolved", at(10))


def test_roles_are_assigned_and_reassigned() -> None:
    incident_id, row = _opened()
    for role, person in (
        ("incident_commander", "alice"),
        ("technical_lead", "bob"),
        ("operations_lead", "carol"),
        ("communications_lead", "dan"),
    ):
        assert projection.apply(
            row, RoleAssigned(incident_id=incident_id, role=role, person=person)
        )
    assert (row.incident_commander, row.technical_lead) == ("alice", "bob")
    assert (row.operations_lead, row.communications_lead) == ("carol", "dan")
    same = RoleAssigned(incident_id=incident_id, role="technical_lead", person="bob")
    assert not projection.apply(row, same)
    assert projection.apply(
        row, RoleAssigned(incident_id=incident_id, role="technical_lead", person="erin")
    )
    assert row.technical_lead == "erin"


def test_mtta_and_mttr_are_means_per_severity_over_those_that_happened() -> None:
    times = [
        IncidentTimes("P1", "resolved", T0, at(10), at(60)),
        IncidentTimes("P1", "acknowledged", T0, at(20), None),
        IncidentTimes("P1", "open", T0, None, None),
        IncidentTimes("P3", "resolved", T0, None, at(120)),
    ]
    figures = by_severity(times)
    p1, p3 = figures["P1"], figures["P3"]
    assert (p1.incidents, p1.acknowledged, p1.resolved) == (3, 2, 1)
    assert p1.mtta_s == 15 * 60
    assert p1.mttr_s == 60 * 60
    assert (p3.mtta_s, p3.mttr_s) == (None, 120 * 60)
    assert by_status(times) == {"acknowledged": 1, "open": 1, "resolved": 2}
