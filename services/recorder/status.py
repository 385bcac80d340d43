"""The public status page's content (runbook "External Communication": status.company.com),
decided from what the recorder knows. Pure: incidents and updates in, a `PublicStatus` out.

Nothing internal is published by itself. Components' states are derived from open
incidents (which components, how badly: no title, alert or timeline text); incidents
appear only with the updates the Communications Lead wrote deliberately
(StatusUpdatePosted), under an opaque public id rather than the internal one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "ComponentState",
    "PublicComponent",
    "PublicIncident",
    "PublicStatus",
    "PublicUpdate",
    "component_names",
    "public_status",
]

ComponentState = Literal["operational", "degraded_performance", "partial_outage", "major_outage"]
_RANK: dict[str, int] = {
    "operational": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
}
_BY_SEVERITY: dict[str, ComponentState] = {
    "P0": "major_outage",
    "P1": "partial_outage",
    "P2": "degraded_performance",
    "P3": "degraded_performance",
}
_PUBLIC_NS = uuid.UUID("a4c1f3d2-7e9b-4b15-9d0e-6f2c8b1a5e47")
# The Jarvis stack's components as a reader of the page knows them (CONTRACT §1).
_LABELS = {
    "backend": "Backend API",
    "ollama": "Language models (Ollama)",
    "postgres": "Database (PostgreSQL)",
    "redis": "Cache (Redis)",
    "neo4j": "Graph database (Neo4j)",
    "prometheus": "Metrics (Prometheus)",
    "grafana": "Dashboards (Grafana)",
    "loki": "Logs (Loki)",
}


class PublicComponent(BaseModel):
    name: str = Field(description="The component (canonical service name).")
    label: str = Field(description="Its public name.")
    state: ComponentState = Field(description="Derived from open incidents.")


class PublicUpdate(BaseModel):
    id: str = Field(description="The update's id.")
    status: str = Field(description="investigating, identified, monitoring or resolved.")
    text: str = Field(description="As the Communications Lead wrote it.")
    at: datetime = Field(description="When it was published.")


class PublicIncident(BaseModel):
    id: str = Field(description="A public id (not the internal incident id).")
    status: str = Field(description="The latest update's status.")
    components: list[str] = Field(description="Public names of the components involved.")
    started_at: datetime = Field(description="The first public update.")
    updated_at: datetime = Field(description="The latest public update.")
    updates: list[PublicUpdate] = Field(description="Newest first.")


class PublicStatus(BaseModel):
    title: str = Field(description="The page's title.")
    generated_at: datetime = Field(description="When this answer was made.")
    state: ComponentState = Field(description="The worst component state.")
    components: list[PublicComponent] = Field(description="Every component of the stack.")
    incidents: list[PublicIncident] = Field(description="Current and recent, newest first.")


def component_names(configured: Mapping[str, str], stack: Sequence[str]) -> dict[str, str]:
    """Service → public name: as configured, else the stack's services with known labels."""
    if configured:
        return dict(configured)
    return {name: _LABELS.get(name, name) for name in stack}


def public_id(incident_id: str) -> str:
    return str(uuid.uuid5(_PUBLIC_NS, incident_id))


def public_status(
    *,
    title: str,
    now: datetime,
    components: Mapping[str, str],
    incidents: Sequence[Any],
    updates: Sequence[tuple[str, str, dict[str, Any], datetime]],
) -> PublicStatus:
    """The page. `incidents` have `id`, `status`, `severity`, `services`; `updates` are
    (event id, incident id, payload, occurred_at) of StatusUpdatePosted, oldest first."""
    states: dict[str, ComponentState] = dict.fromkeys(components, "operational")
    involved: dict[str, list[str]] = {}
    for incident in incidents:
        names = [s for s in incident.services or [] if s in components]
        involved[incident.id] = [components[s] for s in names]
        if incident.status == "resolved":
            continue
        state: ComponentState = _BY_SEVERITY.get(incident.severity, "degraded_performance")
        if incident.status == "mitigated":  # its alerts recovered: no longer an outage
            state = "degraded_performance"
        for name in names:
            if _RANK[state] > _RANK[states[name]]:
                states[name] = state
    published: dict[str, list[PublicUpdate]] = {}
    for event_id, incident_id, payload, at in updates:
        published.setdefault(incident_id, []).append(
            PublicUpdate(
                id=event_id, status=str(payload["status"]), text=str(payload["text"]), at=at
            )
        )
    shown = [
        PublicIncident(
            id=public_id(incident_id),
            status=items[-1].status,
            components=involved.get(incident_id, []),
            started_at=items[0].at,
            updated_at=items[-1].at,
            updates=list(reversed(items)),
        )
        for incident_id, items in published.items()
        if incident_id in involved
    ]
    shown.sort(key=lambda i: i.updated_at, reverse=True)
    worst = max(states.values(), key=lambda s: _RANK[s], default="operational")
    return PublicStatus(
        title=title,
        generated_at=now,
        state=worst,
        components=[PublicComponent(name=n, label=components[n], state=states[n]) for n in states],
        incidents=shown,
    )
