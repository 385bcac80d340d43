"""Drill routes: `POST /api/v1/drills` announces a drill (bearer token, like every write),
`GET /api/v1/drills` and `GET /api/v1/drills/{id}` give the reports (services/recorder/
drills.py measures them from the drill's incident timeline)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query

from services.recorder.commands import Commands
from services.recorder.db import as_utc
from services.recorder.drills import SCENARIOS, report
from services.recorder.models import EventRow
from services.recorder.queries import Reader
from services.recorder.schemas import DrillIn, DrillReport
from services.recorder.security import limited_body_route
from shared.events import DrillStarted, utcnow
from shared.settings import Settings

__all__ = ["make_drill_router"]

DrillId = Path(min_length=1, max_length=64, description="The drill's id.")


def make_drill_router(
    *,
    settings: Settings,
    commands: Commands,
    reader: Reader,
    guard: Callable[..., Awaitable[None]],
) -> APIRouter:
    drills = settings.drills
    router = APIRouter(prefix="/api/v1", tags=["drills"])
    write = APIRouter(  # included below, under the same prefix
        tags=["drills"],
        dependencies=[Depends(guard)],
        route_class=limited_body_route(settings.recorder.max_body_bytes),
    )

    async def build(row: EventRow) -> DrillReport:
        started: dict[str, Any] = dict(row.payload)
        injected = as_utc(row.occurred_at)
        # An incident's playbook runs long after it opened: the window bounds only the opening.
        window = timedelta(seconds=float(started.get("window_s") or drills.window_s))
        incident = await reader.drill_incident(started["drill_id"], injected, window)
        events = (
            [
                (i.row.event_type, as_utc(i.row.occurred_at), i.row.payload)
                for i in await reader.timeline(incident.id)
            ]
            if incident
            else []
        )
        found = {"id": incident.id, "status": incident.status} if incident else None
        return DrillReport.model_validate(report(started, found, events))

    @router.get("/drills", response_model=list[DrillReport])
    async def list_drills(limit: int = Query(default=20, ge=1, le=200)) -> list[DrillReport]:
        """The latest drills, newest first, each with its figures."""
        return [await build(row) for row in await reader.drills(limit)]

    @router.get("/drills/{drill_id}", response_model=DrillReport)
    async def get_drill(drill_id: str = DrillId) -> DrillReport:
        """One drill: time from the fault to detection, each phase, verified, resolved."""
        row = await reader.drill(drill_id)
        if row is None:
            raise HTTPException(404, f"drill_id: no drill {drill_id!r}")
        return await build(row)

    @write.post("/drills", status_code=201, response_model=DrillReport)
    async def start_drill(body: DrillIn = Body(...)) -> DrillReport:  # noqa: B008
        """Announce a drill (the caller injects the fault right after: `jarvis-ir drill`).
        Needs `drills.enabled` and the scenario's container in `drills.allowed_targets`."""
        if not drills.enabled:
            raise HTTPException(403, "drills.enabled is false: drills are switched off")
        scenario = SCENARIOS[body.scenario]
        target = settings.triage.containers.get(scenario.service, scenario.service)
        if target not in drills.allowed_targets:
            raise HTTPException(403, f"target: {target} is not in drills.allowed_targets")
        drill_id = str(uuid.uuid4())
        now = utcnow()
        event = DrillStarted(
            event_id=drill_id,
            occurred_at=now,
            producer="recorder",
            drill_id=drill_id,
            scenario=scenario.name,
            service=scenario.service,
            target=target,
            fault=scenario.fault.format(
                target=target, model=drills.model, percent=drills.memory_percent
            ),
            injected_at=now,
            window_s=drills.window_s,
            by=body.by,
        )
        await commands.publish(event)  # on the stream, and recorded at once
        row = await reader.drill(drill_id)
        assert row is not None
        return await build(row)

    router.include_router(write)
    return router
