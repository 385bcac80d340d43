"""Operator commands (CONTRACT §4): each is published as an event so every service reacts.

The event is also recorded at once, so the operator reads their own write; the copy the
recorder later consumes from the stream is recognised as the same event. A client that
retries may send `Idempotency-Key`: the same key gives the same event id.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path

from services.recorder.api import IncidentId, not_found
from services.recorder.models import EventRow
from services.recorder.queries import Reader
from services.recorder.schemas import (
    Accepted,
    AckIn,
    ApproveIn,
    NoteIn,
    RefuseIn,
    ResolveIn,
    RoleIn,
)
from services.recorder.security import limited_body_route
from services.recorder.store import TimelineStore
from shared.bus import EventBus
from shared.events import (
    ActionApproved,
    ActionRefused,
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    NoteAdded,
    RoleAssigned,
)
from shared.streams import stream_for

__all__ = ["make_command_router"]

_NS = uuid.UUID("5d0e7a52-2f0b-4c8e-8a71-3f1c9b6d4e10")
_ERRORS = {
    401: {"description": "Missing or wrong bearer token."},
    404: {"description": "No such incident or action."},
    409: {
        "description": "The incident is resolved already, or the action named is not the "
        "one waiting, or it was answered already."
    },
    413: {"description": "Body too large."},
}
ActionId = Path(min_length=1, max_length=64, description="The action's id.")
IdempotencyKey = Header(default=None, max_length=128, description="Same key, same event.")


def make_command_router(
    *,
    store: TimelineStore,
    reader: Reader,
    bus: EventBus,
    guard: Callable[..., Awaitable[None]],
    max_body_bytes: int,
    on_recorded: Callable[[], None] = lambda: None,
) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["operator commands"],
        dependencies=[Depends(guard)],
        route_class=limited_body_route(max_body_bytes),
        responses=_ERRORS,  # type: ignore[arg-type]  # FastAPI accepts int keys
    )

    async def publish(event: Event) -> Accepted:
        await bus.publish(event)
        await store.record(event)
        on_recorded()
        return Accepted(
            event_id=event.event_id, event_type=event.event_type, stream=stream_for(event).key
        )

    def event_id(kind: str, target: str, key: str | None) -> str:
        return str(uuid.uuid5(_NS, f"{kind}:{target}:{key}")) if key else str(uuid.uuid4())

    async def open_incident(incident_id: str) -> dict[str, str]:
        row = await reader.get_incident(incident_id)
        if row is None:
            raise not_found(incident_id)
        if row.status == "resolved":
            raise HTTPException(409, f"incident_id: {incident_id!r} is resolved already")
        return {"incident_id": incident_id, "correlation_id": incident_id, "producer": "recorder"}

    async def known_incident(incident_id: str) -> dict[str, str]:
        if await reader.get_incident(incident_id) is None:
            raise not_found(incident_id)
        return {"incident_id": incident_id, "correlation_id": incident_id, "producer": "recorder"}

    @router.post("/incidents/{incident_id}/ack", status_code=202, response_model=Accepted)
    async def acknowledge(
        incident_id: str = IncidentId,
        body: AckIn | None = Body(default=None),  # noqa: B008
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Acknowledge the incident (publishes IncidentAcknowledged on jarvis:incidents)."""
        envelope = await open_incident(incident_id)
        body = body or AckIn()
        return await publish(
            IncidentAcknowledged(
                event_id=event_id("ack", incident_id, idempotency_key), by=body.by, **envelope
            )
        )

    @router.post("/incidents/{incident_id}/resolve", status_code=202, response_model=Accepted)
    async def resolve(
        incident_id: str = IncidentId,
        body: ResolveIn | None = Body(default=None),  # noqa: B008
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Resolve the incident with a note (publishes IncidentResolved)."""
        envelope = await open_incident(incident_id)
        body = body or ResolveIn()
        return await publish(
            IncidentResolved(
                event_id=event_id("resolve", incident_id, idempotency_key),
                by=body.by,
                note=body.note,
                **envelope,
            )
        )

    @router.post("/incidents/{incident_id}/notes", status_code=202, response_model=Accepted)
    async def add_note(
        body: NoteIn,
        incident_id: str = IncidentId,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Write a note on the timeline (publishes NoteAdded)."""
        envelope = await known_incident(incident_id)
        return await publish(
            NoteAdded(
                event_id=event_id("note", incident_id, idempotency_key),
                author=body.by or "operator",
                text=body.text,
                **envelope,
            )
        )

    @router.post("/incidents/{incident_id}/roles", status_code=202, response_model=Accepted)
    async def assign_role(
        body: RoleIn,
        incident_id: str = IncidentId,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Give a runbook role (IC, TL, OL, CL) to a person (publishes RoleAssigned)."""
        envelope = await known_incident(incident_id)
        return await publish(
            RoleAssigned(
                event_id=event_id("role", incident_id, idempotency_key),
                role=body.role,
                person=body.person,
                **envelope,
            )
        )

    async def requested(action_id: str, action: str | None) -> EventRow:
        found = await reader.requested_action(action_id)
        if found is None:
            raise HTTPException(404, f"action_id: no requested action {action_id!r}")
        waiting = str(found.payload.get("action", ""))
        if action is not None and action != waiting:
            raise HTTPException(
                409, f"action: {action_id!r} is {waiting}, not {action} — nothing was done"
            )
        return found

    def follow(request: EventRow) -> dict[str, str | None]:
        return {
            "producer": "recorder",
            "incident_id": request.incident_id,
            "correlation_id": request.incident_id,
            "causation_id": request.event_id,
        }

    @router.post("/actions/{action_id}/approve", status_code=202, response_model=Accepted)
    async def approve(
        action_id: str = ActionId,
        body: ApproveIn | None = Body(default=None),  # noqa: B008
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Approve an action waiting for approval (publishes ActionApproved; the remediator
        runs it). Name the action (`action`) to be sure you approve what you think."""
        body = body or ApproveIn()
        request = await requested(action_id, body.action)
        return await publish(
            ActionApproved(
                event_id=event_id("approve", action_id, idempotency_key),
                action_id=action_id,
                approver=body.by or "operator",
                **follow(request),
            )
        )

    @router.post("/actions/{action_id}/refuse", status_code=202, response_model=Accepted)
    async def refuse(
        body: RefuseIn,
        action_id: str = ActionId,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Refuse an action waiting for approval (publishes ActionRefused; the remediator
        answers it `rejected`, naming who refused and why, and it never runs)."""
        request = await requested(action_id, body.action)
        if await reader.final_completion(action_id) is not None:
            raise HTTPException(409, f"action_id: {action_id!r} was answered already")
        return await publish(
            ActionRefused(
                event_id=event_id("refuse", action_id, idempotency_key),
                action_id=action_id,
                by=body.by,
                reason=body.reason,
                **follow(request),
            )
        )

    return router
