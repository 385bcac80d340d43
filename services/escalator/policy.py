"""The runbook's escalation matrix (CONTRACT §3) as data, and the pure schedule it implies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.events import Severity

__all__ = ["ESCALATION_MATRIX", "EscalationStep", "schedule"]

# elapsed since the incident opened → level (1 on-call … 4 VP, 5 executive); None = monitor.
ESCALATION_MATRIX: dict[Severity, tuple[tuple[timedelta, int | None], ...]] = {
    Severity.P0: (
        (timedelta(minutes=15), 2),
        (timedelta(hours=1), 3),
        (timedelta(hours=4), 4),
        (timedelta(hours=24), 5),
    ),
    Severity.P1: (
        (timedelta(minutes=15), 1),
        (timedelta(hours=1), 2),
        (timedelta(hours=4), 3),
        (timedelta(hours=24), 4),
    ),
    Severity.P2: (
        (timedelta(minutes=15), None),
        (timedelta(hours=1), 1),
        (timedelta(hours=4), 2),
        (timedelta(hours=24), 3),
    ),
    Severity.P3: (),
}


@dataclass(frozen=True)
class EscalationStep:
    due_at: datetime
    level: int
    after: timedelta

    @property
    def step_id(self) -> str:
        return f"time:{int(self.after.total_seconds())}s:L{self.level}"


def schedule(severity: Severity, opened_at: datetime) -> list[EscalationStep]:
    """The time-based escalations of an incident (monitor cells send nothing)."""
    return [
        EscalationStep(opened_at + after, level, after)
        for after, level in ESCALATION_MATRIX[severity]
        if level is not None
    ]
