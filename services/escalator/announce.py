"""An incident's news on the runbook's routes: its opening, severity changes, roles,
approval requests, remediation results and resolution (escalations go through the
Dispatcher's own path). Also fills the runbook's roles from schedules when it opens.

Each piece of news has a stable step id (`opened`, `severity:P0`, `role:<event>`,
`approval:<action>`, `action:<event>`, `resolved`), so a redelivered event never posts twice.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from services.escalator.delivery import Dispatcher
from services.escalator.messages import Notification
from services.escalator.oncall import OnCallResolver
from services.escalator.store import EscalatorStore, IncidentState
from shared.bus import EventBus
from shared.events import (
    ROLE_TITLES,
    ActionCompleted,
    ActionOutcome,
    Event,
    IncidentResolved,
    RoleAssigned,
    SeverityAssigned,
)

__all__ = ["Announcer"]

log = logging.getLogger(__name__)

_ROLES_NS = uuid.UUID("0f4b1c7e-3a52-4e8d-9c61-2b7a5d8e9f30")


class Announcer:
    def __init__(
        self,
        *,
        store: EscalatorStore,
        dispatcher: Dispatcher,
        bus: EventBus,
        oncall: OnCallResolver,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._bus = bus
        self._oncall = oncall

    def _news(self, event: Event, state: IncidentState, **fields: Any) -> Notification:
        assert event.incident_id
        base: dict[str, Any] = {
            "incident_id": event.incident_id,
            "level": max(state.reached, 1),
            "role": "",
            "severity": state.severity.value if state.severity else "P3",
            "trigger": fields.get("kind", ""),
            "reason": "",
            "occurred_at": event.occurred_at,
            "event_id": event.event_id,
            "title": state.title,
            "service": state.service,
        }
        base.update(fields)
        return Notification(**base)

    async def on_severity(self, event: SeverityAssigned) -> None:
        """Opening (then the roles are filled) or a change of severity."""
        assert event.incident_id
        state = await self._store.state(event.incident_id)
        if state.resolved:
            return
        severity = event.severity.value
        if event.previous_severity is None:
            news = self._news(
                event,
                state,
                kind="opened",
                step="opened",
                summary="incident opened",
                reason=event.reason,
                severity=severity,
                title=event.title,
                service=event.service,
                buttons=("ack",),
            )
            await self._dispatcher.announce(news, event)
            await self._fill_roles(event)
        elif event.previous_severity is not event.severity:
            news = self._news(
                event,
                state,
                kind="severity_changed",
                step=f"severity:{severity}",
                summary=f"severity {event.previous_severity.value} → {severity}",
                reason=event.reason,
                severity=severity,
            )
            await self._dispatcher.announce(news, event)

    async def _fill_roles(self, event: SeverityAssigned) -> None:
        """The roles whose schedules name someone at the incident's opening (the same
        answer on every redelivery: resolved at `opened_at`, with deterministic ids)."""
        assert event.incident_id
        for role, person in (await self._oncall.roles(event.opened_at)).items():
            await self._bus.publish(
                RoleAssigned(
                    event_id=str(uuid.uuid5(_ROLES_NS, f"{event.incident_id}:{role}")),
                    producer="escalator",
                    **event.follow(),
                    role=role,
                    person=person,
                )
            )

    async def on_incident(self, event: Event) -> None:
        """A role given (by a schedule or an operator) or the incident resolved."""
        if not event.incident_id:
            return
        state = await self._store.state(event.incident_id)
        if not state.known:
            log.info(
                "%s of unknown incident %s: not announced", event.event_type, event.incident_id
            )
            return
        if isinstance(event, RoleAssigned):
            title = ROLE_TITLES.get(event.role, event.role)
            news = self._news(
                event,
                state,
                kind="role_assigned",
                step=f"role:{event.event_id}",
                summary=f"{title}: {event.person}",
                reason=f"{event.person} is {title}"
                + (" (from the on-call schedule)" if event.producer == "escalator" else ""),
                people=(event.person,),
                mentions=self._oncall.slack_ids([event.person]),
            )
            await self._dispatcher.announce(news, event)
        elif isinstance(event, IncidentResolved):
            by = "triage (quiet period)" if event.automatic else event.by
            news = self._news(
                event,
                state,
                kind="resolved",
                step="resolved",
                summary="resolved",
                reason=f"resolved by {by}" + (f": {event.note}" if event.note else ""),
            )
            await self._dispatcher.announce(news, event)

    async def on_action(self, event: ActionCompleted) -> None:
        """An action waiting for approval (with Approve / Refuse), or a real result."""
        assert event.incident_id
        state = await self._store.state(event.incident_id)
        if not state.known or state.resolved:
            return
        target = f" on {event.target}" if event.target else ""
        if event.outcome is ActionOutcome.AWAITING_APPROVAL:
            news = self._news(
                event,
                state,
                kind="approval_requested",
                step=f"approval:{event.action_id}",
                summary=f"approval needed: {event.action}{target}",
                reason=event.detail,
                buttons=("approve", "refuse"),
                action_ref=event.action_id,
            )
        elif not event.dry_run:
            news = self._news(
                event,
                state,
                kind="remediation",
                step=f"action:{event.event_id}",
                summary=f"{event.action}{target} {event.outcome.value}",
                reason=event.detail,
            )
        else:
            return  # a dry run changed nothing: no news for the operations channel
        await self._dispatcher.announce(news, event)
