"""The recorder's read routes (CONTRACT §4): incidents, timelines, stats, postmortems."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from services.recorder import stats as figures
from services.recorder.db import as_utc
from services.recorder.draft import Drafter
from services.recorder.postmortem_html import as_html, wants_html
from services.recorder.queries import IncidentFilter, Reader
from services.recorder.report import incident_detail, postmortem_markdown, timeline_entries
from services.recorder.schemas import (
    IncidentDetail,
    IncidentOut,
    NextEscalation,
    SeverityName,
    SeverityStats,
    Stats,
    Status,
    TimelineEntry,
)

__all__ = ["IncidentId", "NextEscalations", "make_read_router", "not_found"]

#: The escalator's next time step of each incident that has one (see EscalatorStore.next_due).
NextEscalations = Callable[[list[str]], Awaitable[dict[str, NextEscalation]]]


async def _none(_: list[str]) -> dict[str, NextEscalation]:
    return {}


IncidentId = Path(min_length=1, max_length=64, description="The incident's id.")


def not_found(incident_id: str) -> HTTPException:
    return HTTPException(404, f"incident_id: no incident {incident_id!r}")


def make_read_router(
    reader: Reader,
    page_size: int,
    next_escalations: NextEscalations = _none,
    drafter: Drafter | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["timeline"])

    @router.get("/incidents", response_model=list[IncidentOut])
    async def list_incidents(
        response: Response,
        status: Status | None = None,
        severity: SeverityName | None = None,
        service: str | None = Query(default=None, min_length=1, max_length=128),
        since: Annotated[datetime | None, Query(description="Opened at or after.")] = None,
        limit: int = Query(default=page_size, ge=1, le=1000),
        offset: int = Query(default=0, ge=0, le=10_000_000),
    ) -> list[IncidentOut]:
        """Incidents, newest first; the total matching is in `X-Total-Count`."""
        where = IncidentFilter(status, severity, service, as_utc(since) if since else None)
        rows, total = await reader.list_incidents(where, limit=limit, offset=offset)
        response.headers["X-Total-Count"] = str(total)
        pending = await next_escalations([r.id for r in rows if r.status != "resolved"])
        return [IncidentOut.of(r, pending.get(r.id)) for r in rows]

    @router.get("/incidents/{incident_id}", response_model=IncidentDetail)
    async def get_incident(incident_id: str = IncidentId) -> IncidentDetail:
        """An incident with its path through the runbook's phases, its severity history and
        its alerts as counted runs."""
        pending = await next_escalations([incident_id])
        detail = await incident_detail(
            reader, incident_id, next_escalation=pending.get(incident_id)
        )
        if detail is None:
            raise not_found(incident_id)
        return detail

    @router.get("/incidents/{incident_id}/timeline", response_model=list[TimelineEntry])
    async def get_timeline(incident_id: str = IncidentId) -> list[TimelineEntry]:
        """The incident's events in the order they happened, with causation links:
        `causation_id` (what an event reacts to) and `effects` (what reacts to it)."""
        if await reader.get_incident(incident_id) is None:
            raise not_found(incident_id)
        return await timeline_entries(reader, incident_id)

    @router.get(
        "/incidents/{incident_id}/postmortem",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/markdown": {}, "text/html": {}}}},
    )
    async def get_postmortem(
        incident_id: str = IncidentId,
        accept: str | None = Header(default=None, max_length=1024),
    ) -> Response:
        """The runbook's blameless postmortem template, filled in from the timeline:
        Markdown, or an HTML page when the client asks for `text/html` (a browser); with
        `recorder.postmortem_draft.enabled`, a draft by the local model comes first."""
        text = await postmortem_markdown(reader, incident_id, drafter)
        if text is None:
            raise not_found(incident_id)
        if wants_html(accept):
            return HTMLResponse(as_html(text, f"Post-Incident Review: {incident_id}"))
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @router.get("/stats", response_model=Stats)
    async def get_stats(
        since: Annotated[datetime | None, Query(description="Incidents opened since.")] = None,
    ) -> Stats:
        """MTTA and MTTR per severity, incidents per status and per service."""
        since = as_utc(since) if since else None
        rows = await reader.incidents_for_stats(since)
        times = [
            figures.IncidentTimes(
                severity=r.severity,
                status=r.status,
                opened_at=as_utc(r.opened_at),
                acknowledged_at=as_utc(r.acknowledged_at),
                resolved_at=as_utc(r.resolved_at),
            )
            for r in rows
        ]
        return Stats(
            since=since,
            incidents=len(times),
            by_status=figures.by_status(times),
            by_severity={
                sev: SeverityStats(**vars(f)) for sev, f in figures.by_severity(times).items()
            },
            by_service=await reader.incidents_per_service(since),
        )

    return router
