"""Impact and urgency for an alert (hints, sender severity, defaults)."""

from __future__ import annotations

from services.triage.classify import classify
from shared.events import AlertRaised, Level, Severity

M = Level.MEDIUM


def test_hints_decide() -> None:
    alert = AlertRaised(service="backend", impact="high", urgency="high")
    verdict = classify(alert, M, M)
    assert verdict.severity is Severity.P0
    assert "from the alert" in verdict.reason


def test_sender_severity_is_mapped() -> None:
    verdict = classify(AlertRaised(service="x", external_severity="warning"), M, M)
    assert (verdict.impact, verdict.urgency, verdict.severity) == (M, Level.LOW, Severity.P2)


def test_data_loss_is_p0() -> None:
    verdict = classify(AlertRaised(service="postgres", data_loss=True), M, M)
    assert verdict.severity is Severity.P0
    assert verdict.reason == "data loss detected"


def test_unclassified_gets_the_default_with_reason() -> None:
    verdict = classify(AlertRaised(service="mystery"), Level.LOW, Level.LOW)
    assert verdict.severity is Severity.P3
    assert verdict.reason == "unclassified"
