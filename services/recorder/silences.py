"""Silences and maintenance windows over HTTP (CONTRACT §5): made, listed and expired here,
kept in Redis for triage, the remediator and the escalator (`shared.silence_store`).

Each change is an event on `jarvis:incidents` (SilenceCreated, SilenceExpired), recorded
at once like an operator command, so `GET /api/v1/silences/{id}` shows who made it, the
alerts it kept quiet (AlertSilenced, from triage) and who ended it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from services.recorder.queries import Reader, TimelineItem
from services.recorder.schemas import TimelineEntry
from services.recorder.security import limited_body_route
from services.recorder.store import TimelineStore
from shared.events import utcnow
from shared.silence_store import SilenceStore
from shared.silences import Silence, SilenceSpec, SilenceState, canonical_service, current_or_next

__all__ = ["SilenceOut", "make_silence_router"]

SilenceId = Path(min_length=1, max_length=64, description="The silence's id.")


class Window(BaseModel):
    starts_at: datetime = Field(description="Start (UTC).")
    ends_at: datetime = Field(description="End (UTC).")


class SilenceOut(Silence):
    state: SilenceState = Field(description="active, pending or expired, now.")
    window: Window | None = Field(description="The window in force now, else the next one.")

    @classmethod
    def of(cls, silence: Silence, now: datetime) -> SilenceOut:
        found = current_or_next(silence, now)
        state: SilenceState = "expired" if found is None else "pending"
        if found is not None and found[0] <= now:
            state = "active"
        window = Window(starts_at=found[0], ends_at=found[1]) if found else None
        return cls(**silence.model_dump(), state=state, window=window)


class SilenceDetail(SilenceOut):
    history: list[TimelineEntry] = Field(
        description="Its audit trail: SilenceCreated, AlertSilenced, SilenceExpired."
    )


class Created(BaseModel):
    id: str = Field(description="The new silence's id.")


def make_silence_router(
    *,
    silences: SilenceStore,
    store: TimelineStore,
    reader: Reader,
    guard: Callable[..., Awaitable[None]],
    max_body_bytes: int,
    aliases: dict[str, str],
    on_recorded: Callable[[], None] = lambda: None,
) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/silences", tags=["silences"], route_class=limited_body_route(max_body_bytes)
    )

    def canonical(spec: SilenceSpec) -> SilenceSpec:
        # Service names are canonical (CONTRACT §5): `sutazai-postgres` means `postgres`.
        matchers = [
            m.model_copy(update={"value": canonical_service(m.value, aliases)})
            if m.name == "service" and not m.isRegex
            else m
            for m in spec.matchers
        ]
        return spec.model_copy(update={"matchers": matchers})

    @router.post(
        "",
        status_code=201,
        response_model=Created,
        dependencies=[Depends(guard)],
        responses={401: {"description": "Missing or wrong bearer token."}},
    )
    async def create(spec: SilenceSpec) -> Created:
        """Silence matching alerts from `starts_at` to `ends_at`, or in the windows of a
        `recurrence` between them (publishes SilenceCreated). A silenced alert opens no
        incident, starts no playbook and pages nobody; open incidents are not silenced."""
        silence, event = await silences.create(canonical(spec), utcnow())
        await store.record(event)  # the operator reads their own write at once
        on_recorded()
        return Created(id=silence.id)

    @router.get("", response_model=list[SilenceOut])
    async def list_silences(
        state: Literal["active", "pending", "expired"] | None = None,
    ) -> list[SilenceOut]:
        """Silences, newest first, with their state now and their current or next window
        (expired ones are kept for 7 days)."""
        now = utcnow()
        found = [SilenceOut.of(s, now) for s in reversed(await silences.all(now))]
        return [s for s in found if state is None or s.state == state]

    @router.get("/{silence_id}", response_model=SilenceDetail)
    async def get_silence(silence_id: str = SilenceId) -> SilenceDetail:
        """One silence and its audit trail."""
        silence = await silences.get(silence_id)
        if silence is None:
            raise HTTPException(404, f"silence_id: no silence {silence_id!r}")
        rows = await reader.silence_history(silence_id)
        history = [TimelineEntry.of(TimelineItem(row, None)) for row in rows]
        return SilenceDetail(**SilenceOut.of(silence, utcnow()).model_dump(), history=history)

    @router.delete(
        "/{silence_id}",
        response_model=SilenceOut,
        dependencies=[Depends(guard)],
        responses={
            401: {"description": "Missing or wrong bearer token."},
            404: {"description": "No such silence."},
        },
    )
    async def expire(
        silence_id: str = SilenceId,
        by: str = Query(
            default="operator", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$"
        ),
    ) -> SilenceOut:
        """End a silence now (publishes SilenceExpired); alerts it covered that still fire
        are treated as new from now on. Expiring one that is over changes nothing."""
        now = utcnow()
        found = await silences.expire(silence_id, by, now)
        if found is None:
            raise HTTPException(404, f"silence_id: no silence {silence_id!r}")
        silence, event = found
        if event is not None:
            await store.record(event)
            on_recorded()
        return SilenceOut.of(silence, now)

    return router
