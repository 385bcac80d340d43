"""Reading an incident whole: detail, timeline with causation links, postmortem.

Shared by the HTTP API and `jarvis-ir postmortem`.
"""

from __future__ import annotations

from services.recorder import postmortem
from services.recorder.db import as_utc
from services.recorder.draft import Drafter
from services.recorder.phases import phases
from services.recorder.queries import Reader
from services.recorder.schemas import (
    IncidentDetail,
    IncidentOut,
    NextEscalation,
    Occurrences,
    SeverityChange,
    TimelineEntry,
)

__all__ = ["incident_detail", "postmortem_markdown", "timeline_entries"]


async def timeline_entries(reader: Reader, incident_id: str) -> list[TimelineEntry]:
    """The timeline in order; each entry lists the entries that react to it."""
    items = await reader.timeline(incident_id)
    effects: dict[str, list[str]] = {}
    for item in items:
        if item.row.causation_id:
            effects.setdefault(item.row.causation_id, []).append(item.row.event_id)
    return [TimelineEntry.of(item, effects.get(item.row.event_id)) for item in items]


async def incident_detail(
    reader: Reader,
    incident_id: str,
    timeline: list[TimelineEntry] | None = None,
    next_escalation: NextEscalation | None = None,
) -> IncidentDetail | None:
    row = await reader.get_incident(incident_id)
    if row is None:
        return None
    if timeline is None:
        timeline = await timeline_entries(reader, incident_id)
    history = [
        SeverityChange(
            at=as_utc(entry.occurred_at),
            severity=entry.event["severity"],
            previous_severity=entry.event.get("previous_severity"),
            reason=str(entry.event.get("reason", "")),
            event_id=entry.event_id,
        )
        for entry in timeline
        if entry.event_type == "SeverityAssigned"
    ]
    runs = [Occurrences.of(run) for run in await reader.occurrences(incident_id)]
    incident = IncidentOut.of(row, next_escalation)
    return IncidentDetail(
        **incident.model_dump(),
        phases=phases(incident, timeline),
        severity_history=history,
        alerts=runs,
        alert_count=sum(r.count for r in runs),
    )


async def postmortem_markdown(
    reader: Reader, incident_id: str, drafter: Drafter | None = None
) -> str | None:
    """The postmortem of an incident; None when there is no such incident. With a drafter,
    the local model's draft (or why there is none) comes after the header."""
    timeline = await timeline_entries(reader, incident_id)
    detail = await incident_detail(reader, incident_id, timeline)
    if detail is None:
        return None
    text = postmortem.render(detail, timeline)
    if drafter is None:
        return text
    draft, why = await drafter.draft(detail, timeline)
    insert = draft or f"_No draft by the local model: {why}. The template follows._\n"
    head, marker, rest = text.partition("## Executive Summary")
    return head + insert + "\n" + marker + rest
