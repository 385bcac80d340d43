"""Turning facts into escalations: the thin layer between the handlers, the pure policy
and the Redis store. Time steps are scheduled on SeverityAssigned and fired by the tick;
automatic triggers fire at once, each at most once per incident and trigger kind.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from prometheus_client import Counter

from services.escalator.oncall import OnCallResolver
from services.escalator.policy import Policy, Trigger, immediate_triggers, plan
from services.escalator.store import DueTimer, EscalatorStore, IncidentState, PlannedTimer
from shared.clock import Clock
from shared.events import EscalationDue, EscalationTrigger, Event, Severity, SeverityAssigned
from shared.rotation import Resolved

__all__ = ["Escalations"]

log = logging.getLogger(__name__)

_NS = uuid.UUID("9a2f7c1e-6b4d-4e8a-b0c3-7d5e1f2a3b44")

FIRED = Counter(
    "jarvis_escalations_total",
    "Escalations emitted by the escalator, by trigger.",
    ["trigger"],
)


def _escalation_id(incident_id: str, step: str) -> str:
    return str(uuid.uuid5(_NS, f"{incident_id}:{step}"))


def _elapsed(now: datetime, opened_at: datetime | None) -> float:
    return max(0.0, (now - opened_at).total_seconds()) if opened_at else 0.0


def _human(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class Escalations:
    def __init__(
        self,
        store: EscalatorStore,
        clock: Clock,
        current_policy: Policy,
        oncall: OnCallResolver | None = None,
        drill_cap: int = 1,
    ) -> None:
        self._store = store
        self._clock = clock
        self._current = current_policy
        self._policy_json = current_policy.model_dump_json()
        self._drill_policy_json = current_policy.capped(drill_cap).model_dump_json()
        self._oncall = oncall

    async def _resolve(self, policy: Policy, level: int, at: datetime) -> Resolved:
        """The level's contacts when the step fires: schedules name whoever is on call now."""
        contacts = policy.level(level).contacts
        if self._oncall is None:
            return Resolved(tuple(contacts), {}, ())
        return await self._oncall.resolve(contacts, at)

    async def policy_of(self, incident_id: str) -> Policy:
        """The incident's snapshot, or the current policy for an incident not seen yet."""
        state = await self._store.state(incident_id)
        if state.policy_json:
            return Policy.model_validate_json(state.policy_json)
        return self._current

    async def on_severity(self, event: SeverityAssigned) -> None:
        """(Re)schedule the incident's time steps, then fire the triggers it sets off."""
        incident_id = event.incident_id
        assert incident_id, "checked by the handler"
        # A drill's incident is snapshotted with the capped policy: a game day pages no VP.
        chosen = self._drill_policy_json if event.drill_id else self._policy_json
        policy = Policy.model_validate_json(await self._store.snapshot_policy(incident_id, chosen))
        services = await self._store.add_services(
            incident_id, {s for s in [event.service, *event.services] if s}
        )
        triggers = immediate_triggers(
            policy, services=services, data_loss=event.data_loss, security=event.security
        )
        state = await self._store.state(incident_id)
        if state.resolved:
            return
        opened_at = state.opened_at or event.opened_at
        steps = plan(
            policy,
            event.severity,
            opened_at,
            self._clock.now(),
            fired=await self._store.fired(incident_id),
            reached=state.reached,
            ack=state.ack,
        )
        changed = await self._store.reschedule(
            incident_id,
            severity=event.severity,
            severity_at=event.occurred_at,
            opened_at=opened_at,
            service=event.service,
            title=event.title,
            timers=[PlannedTimer(s.step_id, s.level, s.due_at) for s in steps],
        )
        if changed < 0:
            log.info("%s ignored for %s: stale or resolved", event.event_id, incident_id)
            return
        state = await self._store.state(incident_id)
        for step, reason in state.pending.items():
            kind = EscalationTrigger(step.removeprefix("trigger:"))
            triggers.append(Trigger(kind, policy.trigger_levels[kind], reason))
        # Lowest level first, so a burst of triggers escalates upwards, never back down.
        for trigger in sorted(triggers, key=lambda t: t.level):
            await self.fire_trigger(incident_id, trigger, cause=event)

    async def fire_trigger(self, incident_id: str, trigger: Trigger, cause: Event) -> bool:
        """Escalate at once; a trigger before the incident's severity waits for it."""
        state = await self._store.state(incident_id)
        if state.resolved:
            return False
        if not state.known or state.severity is None:
            await self._store.remember_trigger(incident_id, trigger.step_id, trigger.reason)
            return False
        now = self._clock.now()
        policy = Policy.model_validate_json(state.policy_json) if state.policy_json else None
        level = max(trigger.level, state.reached, 1)  # never de-escalate
        policy = policy or self._current
        event = self._event(
            incident_id,
            state,
            trigger.step_id,
            level,
            trigger.kind,
            trigger.reason,
            now,
            policy,
            await self._resolve(policy, level, now),
            causation_id=cause.event_id,
        )
        fired = await self._store.fire_immediate(incident_id, trigger.step_id, level, event)
        if fired == 1:
            FIRED.labels(trigger.kind.value).inc()
        return fired == 1

    async def fire_due(self, now: datetime) -> int:
        """Fire every time step due by `now`; returns how many this call fired."""
        total = 0
        while True:
            due = await self._store.due(now)
            for timer in due:
                total += await self._fire_timer(timer, now)
            if len(due) < 500:
                return total

    async def _fire_timer(self, timer: DueTimer, now: datetime) -> int:
        state = await self._store.state(timer.incident_id)
        policy = Policy.model_validate_json(state.policy_json) if state.policy_json else None
        elapsed = _elapsed(now, state.opened_at)
        reason = (
            f"{timer.severity.value} open for {_human(elapsed)} "
            f"(threshold {timer.step.split(':')[1]}) without resolution"
        )
        policy = policy or self._current
        event = self._event(
            timer.incident_id,
            state,
            timer.step,
            timer.level,
            EscalationTrigger.TIME,
            reason,
            now,
            policy,
            await self._resolve(policy, timer.level, now),
            severity=timer.severity,
        )
        fired = await self._store.fire(timer, event)
        if fired == 1:
            FIRED.labels(EscalationTrigger.TIME.value).inc()
            return 1
        return 0

    def _event(
        self,
        incident_id: str,
        state: IncidentState,
        step: str,
        level: int,
        trigger: EscalationTrigger,
        reason: str,
        now: datetime,
        policy: Policy,
        resolved: Resolved,
        *,
        severity: Severity | None = None,
        causation_id: str | None = None,
    ) -> str:
        contacts = policy.level(level)
        who = ", ".join(f"{person} on call for {name}" for name, person in resolved.on_call.items())
        gaps = "".join(f"; nobody on call for {name}" for name in resolved.unfilled)
        role = f"{contacts.role}: {who}" if who else contacts.role
        return EscalationDue(
            event_id=_escalation_id(incident_id, step),
            occurred_at=now,
            producer="escalator",
            incident_id=incident_id,
            correlation_id=incident_id,
            causation_id=causation_id,
            level=level,
            severity=severity or state.severity or Severity.P3,
            trigger=trigger,
            reason=f"{reason} → level {level} ({role}){gaps}",
            step=step,
            elapsed_s=_elapsed(now, state.opened_at),
            contacts=list(resolved.addresses),
            on_call=resolved.on_call,
        ).to_json()
