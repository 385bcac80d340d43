"""Escalator's composition root: wires the store, the policy, the notifiers and the
handlers. Nothing here decides anything; see policy.py (decisions), escalations.py
(scheduling and triggers), store.py (durable state) and delivery.py (notifications).

Streams read through the consumer group `escalator` (CONTRACT §2): jarvis:severity
(schedule, reschedule, triggers), jarvis:incidents (ack, resolve), jarvis:actions:completed
(remediation failed), jarvis:alerts (data loss or breach reported on a known incident) and
jarvis:escalations (the escalator is also the notifier that delivers them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from services.escalator.announce import Announcer
from services.escalator.delivery import Dispatcher
from services.escalator.escalations import Escalations
from services.escalator.lint import policy_warnings
from services.escalator.notifiers import build_notifiers
from services.escalator.oncall import OnCallResolver
from services.escalator.policy import Policy, immediate_triggers, remediation_trigger
from services.escalator.routing import build_route_notifiers
from services.escalator.store import DUE_KEY, EscalatorStore
from shared.events import (
    ActionCompleted,
    AlertRaised,
    AlertStatus,
    EscalationDue,
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    RoleAssigned,
    SeverityAssigned,
)
from shared.overrides import OverrideStore
from shared.runtime import Runtime, Service
from shared.streams import ACTIONS_COMPLETED, ALERTS, ESCALATIONS, INCIDENTS, SEVERITY

__all__ = ["DUE_KEY", "GROUP", "build"]

GROUP = "escalator"
log = logging.getLogger(__name__)


def build(runtime: Runtime) -> Service:
    settings = runtime.settings.escalator
    policy = Policy.from_settings(settings)
    store = EscalatorStore(runtime.redis)
    oncall = OnCallResolver(settings, OverrideStore(runtime.redis))
    escalations = Escalations(
        store,
        runtime.clock,
        policy,
        oncall,
        drill_cap=runtime.settings.drills.max_escalation_level,
    )
    client = httpx.AsyncClient(follow_redirects=False)
    notifiers = build_notifiers(settings.notifier, client)
    notifiers.update(build_route_notifiers(settings.routes, settings.notifier, client))
    for warning in policy_warnings(settings, notifiers, runtime.clock.now()):
        log.warning("policy: %s", warning)
    dispatcher = Dispatcher(
        redis=runtime.redis,
        store=store,
        notifiers=notifiers,
        retry=settings.notifier.retry,
        clock=runtime.clock,
        instance=runtime.instance,
        current_policy=policy,
        routes=settings.routes,
        oncall=oncall,
    )
    announcer = Announcer(store=store, dispatcher=dispatcher, bus=runtime.bus(GROUP), oncall=oncall)

    async def on_severity(event: Event) -> None:
        assert isinstance(event, SeverityAssigned)
        if not event.incident_id:
            raise ValueError("incident_id: SeverityAssigned needs an incident")
        await escalations.on_severity(event)
        await announcer.on_severity(event)

    async def on_incident(event: Event) -> None:
        if not event.incident_id:
            return
        if isinstance(event, IncidentAcknowledged):
            incident_policy = await escalations.policy_of(event.incident_id)
            await store.acknowledge(event.incident_id, incident_policy.ack_extra_levels)
        elif isinstance(event, IncidentResolved):
            await store.resolve(event.incident_id)
            state = await store.state(event.incident_id)
            await dispatcher.on_resolved(event, state.reached)
            await announcer.on_incident(event)
        elif isinstance(event, RoleAssigned):
            await announcer.on_incident(event)

    async def on_action(event: Event) -> None:
        assert isinstance(event, ActionCompleted)
        if not event.incident_id:
            return
        incident_policy = await escalations.policy_of(event.incident_id)
        trigger = remediation_trigger(
            incident_policy,
            action=event.action,
            outcome=event.outcome,
            escalate=event.escalate,
            detail=event.detail,
            on_failure=event.on_failure,
        )
        if trigger:
            await escalations.fire_trigger(event.incident_id, trigger, cause=event)
        await announcer.on_action(event)

    async def on_alert(event: Event) -> None:
        # Alerts usually reach us through triage's SeverityAssigned; this catches a data
        # loss or breach flag on an alert that already names its incident.
        assert isinstance(event, AlertRaised)
        if not event.incident_id or event.status is not AlertStatus.FIRING:
            return
        if not (event.data_loss or event.security):
            return
        incident_policy = await escalations.policy_of(event.incident_id)
        for trigger in immediate_triggers(
            incident_policy, services=set(), data_loss=event.data_loss, security=event.security
        ):
            await escalations.fire_trigger(event.incident_id, trigger, cause=event)

    async def on_escalation(event: Event) -> None:
        assert isinstance(event, EscalationDue)
        await dispatcher.on_escalation(event)

    async def tick() -> None:
        while True:
            await escalations.fire_due(runtime.clock.now())
            await asyncio.sleep(settings.tick_s)

    async def retry() -> None:
        await dispatcher.retry_forever(settings.tick_s)

    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "pending_timers": await store.pending_count(),
            "channels": dispatcher.channels,
            "notifications_waiting": await dispatcher.waiting(),
        }

    async def close() -> None:
        await client.aclose()

    return Service(
        name=GROUP,
        consumers=[
            runtime.consume(SEVERITY, GROUP, on_severity),
            runtime.consume(INCIDENTS, GROUP, on_incident),
            runtime.consume(ACTIONS_COMPLETED, GROUP, on_action),
            runtime.consume(ALERTS, GROUP, on_alert),
            runtime.consume(ESCALATIONS, GROUP, on_escalation),
        ],
        background=[tick, retry],
        shutdown=[close],
        health=health,
    )
