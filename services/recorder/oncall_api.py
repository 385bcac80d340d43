"""On-call over HTTP: who is on call now at each level, the schedules' overrides, and an
iCalendar feed per schedule (CONTRACT §5 "On-call").

Schedules come from the configuration (`escalator.schedules`); overrides are runtime
state in Redis, shared with every escalator replica. Each override change is published
on jarvis:incidents (ScheduleOverrideAdded / Removed) and recorded, for the audit trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import icalendar
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.recorder.commands import Commands
from services.recorder.security import limited_body_route
from shared.clock import Clock
from shared.events import ScheduleOverrideAdded, ScheduleOverrideRemoved
from shared.overrides import OverrideStore
from shared.rotation import Override, on_call, resolve_contacts, shifts
from shared.settings import EscalatorSettings

__all__ = ["make_oncall_router"]

_NS = uuid.UUID("7b3e9d10-52c4-4f6a-8e1b-0c9d2a4f6e83")
_MAX_OVERRIDE = timedelta(days=92)
ScheduleName = Path(min_length=1, max_length=128, description="escalator.schedules.<name>")


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: str = Field(min_length=1, max_length=128, description="Who is on call instead.")
    starts_at: datetime = Field(description="Begins (RFC 3339; naive times are UTC).")
    ends_at: datetime = Field(description="Ends.")
    by: str = Field(default="operator", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_oncall_router(
    *,
    settings: EscalatorSettings,
    overrides: OverrideStore,
    commands: Commands,
    clock: Clock,
    guard: Callable[..., Awaitable[None]],
    max_body_bytes: int,
) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1", tags=["on-call"], route_class=limited_body_route(max_body_bytes)
    )
    schedules = settings.schedules

    def known(name: str) -> str:
        if name not in schedules:
            raise HTTPException(404, f"name: no schedule {name!r} (escalator.schedules)")
        return name

    @router.get("/oncall")
    async def who_is_on_call(
        at: Annotated[datetime | None, Query(description="Another instant (default: now).")] = None,
    ) -> dict[str, Any]:
        """Who is on call at each level and in each schedule, and until when."""
        when = _utc(at) if at else clock.now()
        found = await overrides.of_all(schedules)
        by_schedule = {
            name: vars(on_call(schedule, found[name], when)) for name, schedule in schedules.items()
        }
        levels = []
        for number, level in settings.levels.by_number().items():
            contacts = level.contacts or []
            resolved = resolve_contacts(contacts, schedules, found, settings.people, when)
            levels.append(
                {
                    "level": number,
                    "role": level.role,
                    "contacts": contacts,
                    "addresses": list(resolved.addresses),
                    "on_call": [
                        {"schedule": name, **by_schedule[name]}
                        for name in (c.removeprefix("schedule:") for c in contacts)
                        if name in by_schedule
                    ],
                }
            )
        return {"at": when, "levels": levels, "schedules": by_schedule}

    @router.get("/schedules/{name}/overrides", response_model=list[Override])
    async def list_overrides(name: str = ScheduleName) -> list[Override]:
        """The schedule's overrides (those that ended over 30 days ago are forgotten)."""
        return await overrides.of(known(name))

    @router.post(
        "/schedules/{name}/overrides",
        status_code=201,
        response_model=Override,
        dependencies=[Depends(guard)],
    )
    async def add_override(
        body: OverrideIn,
        name: str = ScheduleName,
        idempotency_key: str | None = Header(default=None, max_length=128),
    ) -> Override:
        """Put someone else on call for a while (publishes ScheduleOverrideAdded)."""
        schedule = schedules[known(name)]
        if body.person not in settings.people and body.person not in schedule.members:
            raise HTTPException(
                422, f"person: {body.person!r} is neither in escalator.people nor a member"
            )
        starts, ends, now = _utc(body.starts_at), _utc(body.ends_at), clock.now()
        if ends <= starts:
            raise HTTPException(422, "ends_at: must be after starts_at")
        if ends <= now:
            raise HTTPException(422, "ends_at: the override would be over already")
        if ends - starts > _MAX_OVERRIDE:
            raise HTTPException(422, "ends_at: an override lasts at most 92 days")
        oid = str(uuid.uuid5(_NS, f"{name}:{idempotency_key}")) if idempotency_key else None
        override = Override(
            id=oid or str(uuid.uuid4()),
            schedule=name,
            person=body.person,
            starts_at=starts,
            ends_at=ends,
            created_at=now,
            created_by=body.by,
        )
        if not await overrides.add(override):
            stored = {o.id: o for o in await overrides.of(name)}.get(override.id)
            return stored or override  # a retried request: the first answer
        await overrides.prune(name, now)
        await commands.publish(
            ScheduleOverrideAdded(
                event_id=str(uuid.uuid5(_NS, f"added:{override.id}")),
                producer="recorder",
                schedule=name,
                override_id=override.id,
                person=override.person,
                starts_at=starts,
                ends_at=ends,
                by=body.by,
            )
        )
        return override

    @router.delete(
        "/schedules/{name}/overrides/{override_id}",
        status_code=204,
        dependencies=[Depends(guard)],
    )
    async def remove_override(
        name: str = ScheduleName,
        override_id: str = Path(min_length=1, max_length=64),
        by: str = Query(default="operator", min_length=1, max_length=128),
    ) -> Response:
        """Delete an override (publishes ScheduleOverrideRemoved)."""
        removed = await overrides.remove(known(name), override_id)
        if removed is None:
            raise HTTPException(404, f"override_id: no override {override_id!r} in {name!r}")
        await commands.publish(
            ScheduleOverrideRemoved(
                event_id=str(uuid.uuid5(_NS, f"removed:{override_id}")),
                producer="recorder",
                schedule=name,
                override_id=override_id,
                person=removed.person,
                starts_at=removed.starts_at,
                ends_at=removed.ends_at,
                by=by,
            )
        )
        return Response(status_code=204)

    @router.get(
        "/schedules/{name}.ics",
        response_class=Response,
        responses={200: {"content": {"text/calendar": {}}}},
    )
    async def calendar(name: str = ScheduleName) -> Response:
        """The schedule as an iCalendar feed: one event per shift, overrides applied,
        from a week ago to `escalator.ics_days` ahead (subscribe to it in a calendar)."""
        schedule = schedules[known(name)]
        now = clock.now()
        start, end = now - timedelta(days=7), now + timedelta(days=settings.ics_days)
        cal = icalendar.Calendar()
        cal.add("prodid", "-//Jarvis Responder//on-call//EN")
        cal.add("version", "2.0")
        cal.add("x-wr-calname", f"On call: {name}")
        for shift in shifts(schedule, await overrides.of(name), start, end):
            if shift.person is None:
                continue
            event = icalendar.Event()
            event.add("uid", f"{name}-{shift.start:%Y%m%dT%H%M%SZ}@jarvis-responder")
            event.add("dtstamp", now)
            event.add("dtstart", shift.start)
            event.add("dtend", shift.end)
            covering = " (override)" if shift.override_id else ""
            event.add("summary", f"On call ({name}): {shift.person}{covering}")
            cal.add_component(event)
        return Response(cal.to_ical(), media_type="text/calendar; charset=utf-8")

    return router
