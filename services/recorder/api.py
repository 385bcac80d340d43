"""The recorder's HTTP routes (CONTRACT §4): incidents and their timelines."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query

from services.recorder.schemas import IncidentOut, TimelineEntry
from services.recorder.store import TimelineStore

__all__ = ["make_router"]


def make_router(store: TimelineStore, page_size: int) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["timeline"])

    @router.get("/incidents", response_model=list[IncidentOut])
    async def list_incidents(
        status: Literal["open", "acknowledged", "mitigated", "resolved"] | None = None,
        severity: Literal["P0", "P1", "P2", "P3"] | None = None,
        service: str | None = Query(default=None, max_length=128),
        since: datetime | None = None,
        limit: int = Query(default=page_size, ge=1, le=1000),
        offset: int = Query(default=0, ge=0),
    ) -> list[IncidentOut]:
        """Incidents, newest first."""
        rows = await store.list_incidents(
            status=status,
            severity=severity,
            service=service,
            since=since,
            limit=limit,
            offset=offset,
        )
        return [IncidentOut.of(r) for r in rows]

    @router.get("/incidents/{incident_id}", response_model=IncidentOut)
    async def get_incident(incident_id: str) -> IncidentOut:
        row = await store.get_incident(incident_id)
        if row is None:
            raise HTTPException(404, f"incident {incident_id} not found")
        return IncidentOut.of(row)

    @router.get("/incidents/{incident_id}/timeline", response_model=list[TimelineEntry])
    async def get_timeline(incident_id: str) -> list[TimelineEntry]:
        """The incident's events in the order they happened."""
        if await store.get_incident(incident_id) is None:
            raise HTTPException(404, f"incident {incident_id} not found")
        return [TimelineEntry.of(r) for r in await store.timeline(incident_id)]

    return router
