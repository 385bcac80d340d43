"""An incident's path through the runbook's phases, from its timeline (pure).

detected (Phase 1: the first alert) → triaged (Phase 2: severity assigned) → contained
(Phase 3: data protected or the problem held — a backup, BGSAVE, resource limits or a stop
succeeded) → fixed (Phase 5: a remedy succeeded, or the incident's alerts recovered) →
verified (Phase 6: the verification checks passed) → resolved. A phase the incident went
past without (no containment before a fix, say) stays empty: the bar shows what happened.
"""

from __future__ import annotations

from datetime import datetime

from services.recorder.schemas import IncidentOut, Phase, TimelineEntry

__all__ = ["CONTAINMENT", "REMEDIES", "phases"]

CONTAINMENT = frozenset({"postgres.backup", "redis.bgsave", "docker.update_limits", "docker.stop"})
REMEDIES = frozenset(
    {
        "docker.restart",
        "docker.start",
        "docker.recreate",
        "ollama.pull",
        "recovery.ordered_restart",
        "docker.system_prune",
        "docker.volume_prune",
        "redis.flushdb",
    }
)


def phases(incident: IncidentOut, timeline: list[TimelineEntry]) -> list[Phase]:
    """The six phases in order, each with when the incident reached it (or None)."""
    detected: datetime | None = None
    triaged: datetime | None = None
    contained: datetime | None = None
    fixed: datetime | None = None
    verified: datetime | None = None

    def earliest(known: datetime | None, at: datetime) -> datetime:
        return at if known is None or at < known else known

    for entry in timeline:
        at, event = entry.occurred_at, entry.event
        if entry.event_type == "AlertRaised":
            detected = earliest(detected, at)
        elif entry.event_type == "SeverityAssigned":
            triaged = earliest(triaged, at)
        elif entry.event_type == "ActionCompleted" and event.get("outcome") == "succeeded":
            action = str(event.get("action", ""))
            if action in CONTAINMENT:
                contained = earliest(contained, at)
            elif action in REMEDIES:
                fixed = earliest(fixed, at)
            elif action == "verify.all":
                verified = earliest(verified, at)
    if incident.mitigated_at is not None:
        fixed = earliest(fixed, incident.mitigated_at)
    return [
        Phase(phase="detected", at=detected or incident.opened_at),
        Phase(phase="triaged", at=triaged),
        Phase(phase="contained", at=contained),
        Phase(phase="fixed", at=fixed),
        Phase(phase="verified", at=verified),
        Phase(phase="resolved", at=incident.resolved_at),
    ]
