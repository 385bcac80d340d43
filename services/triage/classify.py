"""Deciding impact and urgency for an alert: pure, so the runbook's logic is unit-tested here."""

from __future__ import annotations

from dataclasses import dataclass

from services.triage.rules import severity_for
from shared.events import AlertRaised, Level, Severity

__all__ = ["EXTERNAL_SEVERITY", "Classification", "classify"]

# External severities (Alertmanager `severity` label, PagerDuty, Grafana) → (impact, urgency).
EXTERNAL_SEVERITY: dict[str, tuple[Level, Level]] = {
    "critical": (Level.HIGH, Level.HIGH),
    "error": (Level.HIGH, Level.LOW),
    "high": (Level.HIGH, Level.LOW),
    "warning": (Level.MEDIUM, Level.LOW),
    "medium": (Level.MEDIUM, Level.LOW),
    "info": (Level.LOW, Level.LOW),
    "low": (Level.LOW, Level.LOW),
    "none": (Level.LOW, Level.LOW),
}


@dataclass(frozen=True)
class Classification:
    impact: Level
    urgency: Level
    severity: Severity
    reason: str


def classify(alert: AlertRaised, default_impact: Level, default_urgency: Level) -> Classification:
    """Impact and urgency from the alert's own hints, else its sender's severity, else the
    defaults with the reason "unclassified" (an alert is never dropped for lack of a rule)."""
    if alert.data_loss or alert.security:
        impact, urgency = Level.HIGH, Level.HIGH
        reason = "data loss detected" if alert.data_loss else "security breach suspected"
    elif alert.impact and alert.urgency:
        impact, urgency, reason = alert.impact, alert.urgency, "impact and urgency from the alert"
    elif alert.external_severity and alert.external_severity.lower() in EXTERNAL_SEVERITY:
        impact, urgency = EXTERNAL_SEVERITY[alert.external_severity.lower()]
        impact = alert.impact or impact
        urgency = alert.urgency or urgency
        reason = f"sender severity {alert.external_severity.lower()!r}"
    else:
        impact = alert.impact or default_impact
        urgency = alert.urgency or default_urgency
        reason = "unclassified"
    return Classification(impact, urgency, severity_for(impact, urgency), reason)
