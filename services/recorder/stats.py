"""MTTA and MTTR per severity: pure arithmetic over incident projections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["IncidentTimes", "SeverityFigures", "by_severity", "by_status"]


@dataclass(frozen=True)
class IncidentTimes:
    severity: str
    status: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class SeverityFigures:
    incidents: int
    acknowledged: int
    resolved: int
    mtta_s: float | None
    mttr_s: float | None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def by_severity(incidents: Iterable[IncidentTimes]) -> dict[str, SeverityFigures]:
    """Per severity: counts, mean time to acknowledge and mean time to resolve (seconds).

    Both are measured from the incident's opening; an incident not yet acknowledged (or
    resolved) is left out of that mean rather than counted as zero.
    """
    acks: dict[str, list[float]] = {}
    fixes: dict[str, list[float]] = {}
    counts: Counter[str] = Counter()
    for incident in incidents:
        sev = incident.severity
        counts[sev] += 1
        acks.setdefault(sev, [])
        fixes.setdefault(sev, [])
        if incident.acknowledged_at is not None:
            acks[sev].append(
                max(0.0, (incident.acknowledged_at - incident.opened_at).total_seconds())
            )
        if incident.resolved_at is not None:
            fixes[sev].append(max(0.0, (incident.resolved_at - incident.opened_at).total_seconds()))
    return {
        sev: SeverityFigures(
            incidents=counts[sev],
            acknowledged=len(acks[sev]),
            resolved=len(fixes[sev]),
            mtta_s=_mean(acks[sev]),
            mttr_s=_mean(fixes[sev]),
        )
        for sev in sorted(counts)
    }


def by_status(incidents: Iterable[IncidentTimes]) -> dict[str, int]:
    return dict(sorted(Counter(i.status for i in incidents).items()))
