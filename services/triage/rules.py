"""The runbook's classification rules as pure functions (CONTRACT §3)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.events import Level, Severity

__all__ = [
    "RESPONSE_TIME",
    "SEVERITY_MATRIX",
    "most_severe",
    "one_level_up",
    "response_due",
    "severity_for",
]

# Runbook "Impact Assessment Matrix": rows impact, columns urgency.
SEVERITY_MATRIX: dict[Level, dict[Level, Severity]] = {
    Level.HIGH: {Level.LOW: Severity.P1, Level.MEDIUM: Severity.P0, Level.HIGH: Severity.P0},
    Level.MEDIUM: {Level.LOW: Severity.P2, Level.MEDIUM: Severity.P1, Level.HIGH: Severity.P0},
    Level.LOW: {Level.LOW: Severity.P3, Level.MEDIUM: Severity.P2, Level.HIGH: Severity.P1},
}

# Runbook "Severity Levels": response time.
RESPONSE_TIME: dict[Severity, timedelta] = {
    Severity.P0: timedelta(minutes=15),
    Severity.P1: timedelta(hours=1),
    Severity.P2: timedelta(hours=4),
    Severity.P3: timedelta(hours=24),
}


def severity_for(impact: Level, urgency: Level) -> Severity:
    """The matrix cell for impact × urgency."""
    return SEVERITY_MATRIX[impact][urgency]


def response_due(severity: Severity, opened_at: datetime) -> datetime:
    """When the runbook expects a response to an incident of this severity."""
    return opened_at + RESPONSE_TIME[severity]


def most_severe(*severities: Severity) -> Severity:
    """The most severe of several (P0 beats P1 …)."""
    return min(severities, key=lambda s: s.rank)


def one_level_up(severity: Severity) -> Severity:
    """The next more severe level (P0 stays P0)."""
    return Severity(f"P{max(0, severity.rank - 1)}")
