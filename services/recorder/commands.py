"""Operator commands (CONTRACT §4): each is published as an event so every service reacts.

The event is also recorded at once, so the operator reads their own write; the copy the
recorder later consumes from the stream is recognised as the same event. A client that
retries may send `Idempotency-Key`: the same key gives the same event id.

`Commands` is what a command does, whoever asks: the HTTP routes here, and a click on a
Slack button (`slack.py`) issue exactly the same events.
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

__all__ = ["Commands", "make_command_router"]

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


def event_id(kind: str, target: str, key: str | None) -> str:
    """A retried request (same Idempotency-Key) publishes the same event."""
    return str(uuid.uuid5(_NS, f"{kind}:{target}:{key}")) if key else str(uuid.uuid4())


class Commands:
    """Operator commands as events: validated against what the recorder knows, published,
    and recorded at once. Raises HTTPException (404, 409) like the API answers."""

    def __init__(
        self,
        *,
        store: TimelineStore,
        reader: Reader,
        bus: EventBus,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.bus = bus
        self.on_recorded = on_recorded

    async def publish(self, event: Event) -> Accepted:
        await self.bus.publish(event)
        await self.store.record(event)
        self.on_recorded()
        return Accepted(
            event_id=event.event_id, event_type=event.event_type, stream=stream_for(event).key
        )

    async def open_incident(self, incident_id: str) -> dict[str, str]:
        row = await self.reader.get_incident(incident_id)
        if row is None:
            raise not_found(incident_id)
        if row.status == "resolved":
            raise HTTPException(409, f"incident_id: {incident_id!r} is resolved already")
        return {"incident_id": incident_id, "correlation_id": incident_id, "producer": "recorder"}

    async def known_incident(self, incident_id: str) -> dict[str, str]:
        if await self.reader.get_incident(incident_id) is None:
            raise not_found(incident_id)
        return {"incident_id": incident_id, "correlation_id": incident_id, "producer": "recorder"}

    async def acknowledge(self, incident_id: str, by: str, key: str | None) -> Accepted:
        envelope = await self.open_incident(incident_id)
        return await self.publish(
            IncidentAcknowledged(event_id=event_id("ack", incident_id, key), by=by, **envelope)
        )

    async def _waiting_action(self, action_id: str, action: str | None) -> dict[str, str | None]:
        """The envelope of an answer to `action_id`; 404 if no such action was requested,
        409 if `action` names another action than the one requested (nothing is done)."""
        requested: EventRow | None = await self.reader.requested_action(action_id)
        if requested is None:
            raise HTTPException(404, f"action_id: no requested action {action_id!r}")
        waiting = str(requested.payload.get("action", ""))
        if action is not None and action != waiting:
            raise HTTPException(
                409, f"action: {action_id!r} is {waiting}, not {action} — nothing was done"
            )
        return {
            "producer": "recorder",
            "incident_id": requested.incident_id,
            "correlation_id": requested.incident_id,
            "causation_id": requested.event_id,
        }

    async def approve(
        self, action_id: str, approver: str, key: str | None, action: str | None = None
    ) -> Accepted:
        envelope = await self._waiting_action(action_id, action)
        return await self.publish(
            ActionApproved(
                event_id=event_id("approve", action_id, key),
                action_id=action_id,
                approver=approver,
                **envelope,
            )
        )

    async def refuse(
        self, action_id: str, by: str, reason: str, key: str | None, action: str | None = None
    ) -> Accepted:
        envelope = await self._waiting_action(action_id, action)
        if await self.reader.final_completion(action_id) is not None:
            raise HTTPException(409, f"action_id: {action_id!r} was answered already")
        return await self.publish(
            ActionRefused(
                event_id=event_id("refuse", action_id, key),
                action_id=action_id,
                by=by,
                reason=reason,
                **envelope,
            )
        )


def make_command_router(
    *,
    commands: Commands,
    guard: Callable[..., Awaitable[None]],
    max_body_bytes: int,
) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["operator commands"],
        dependencies=[Depends(guard)],
        route_class=limited_body_route(max_body_bytes),
        responses=_ERRORS,  # type: ignore[arg-type]  # FastAPI accepts int keys
    )
    publish = commands.publish
    open_incident = commands.open_incident
    known_incident = commands.known_incident

    @router.post("/incidents/{incident_id}/ack", status_code=202, response_model=Accepted)
    async def acknowledge(
        incident_id: str = IncidentId,
        body: AckIn | None = Body(default=None),  # noqa: B008
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Acknowledge the incident (publishes IncidentAcknowledged on jarvis:incidents)."""
        body = body or AckIn()
        return await commands.acknowledge(incident_id, body.by, idempotency_key)

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

    @router.post("/actions/{action_id}/approve", status_code=202, response_model=Accepted)
    async def approve(
        action_id: str = ActionId,
        body: ApproveIn | None = Body(default=None),  # noqa: B008
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Approve an action waiting for approval (publishes ActionApproved; the remediator
        runs it). Name the action (`action`) to be sure you approve what you think."""
        body = body or ApproveIn()
        by = body.by or "operator"
        return await commands.approve(action_id, by, idempotency_key, body.action)

    @router.post("/actions/{action_id}/refuse", status_code=202, response_model=Accepted)
    async def refuse(
        body: RefuseIn,
        action_id: str = ActionId,
        idempotency_key: str | None = IdempotencyKey,
    ) -> Accepted:
        """Refuse an action waiting for approval (publishes ActionRefused; the remediator
        answers it `rejected`, naming who refused and why, and it never runs)."""
        return await commands.refuse(action_id, body.by, body.reason, idempotency_key, body.action)

    return router
