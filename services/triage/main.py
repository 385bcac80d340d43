"""Triage's composition root and its thin handlers.

Alerts → incidents (classify, group, raise severity, start a playbook); ActionCompleted →
the playbook's next step; IncidentResolved from an operator → the incident closes; a
background loop resolves incidents whose alerts have been quiet long enough. Each handler
reads state, asks a pure module what to do, and commits the result atomically through
`store.TriageStore`, retrying when another replica changed the state in between.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from services.triage import playbooks as pb
from services.triage.classify import Classification, Classifier, alert_text
from services.triage.drills import mark_drill
from services.triage.grouping import (
    Change,
    GroupingPolicy,
    Incident,
    auto_resolve,
    on_firing,
    on_resolved,
    operator_resolve,
)
from services.triage.outbox import (
    GROUP,
    automatic_resolution,
    derived_id,
    write_alert_change,
    write_incidents,
    write_note,
    write_resolution,
    write_step,
)
from services.triage.silencing import Silenced, Silencing
from services.triage.stale import StaleIncidents
from services.triage.store import AlertQuery, Batch, Keys, TriageStore, Version
from shared.consumer import Retryable
from shared.events import (
    ActionCompleted,
    AlertRaised,
    AlertStatus,
    DrillStarted,
    Event,
    IncidentResolved,
    Level,
)
from shared.runtime import Runtime, Service
from shared.settings import TriageSettings
from shared.silences import SilenceIndex, alert_labels
from shared.streams import ACTIONS_COMPLETED, ALERTS, INCIDENTS

__all__ = ["GROUP", "Triage", "build"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 200


class Contention(Retryable):
    """The state kept changing under us (other replicas committing): the consumer retries
    the entry with backoff, without counting it against the entry, as for an outage."""


class Triage:
    """The handlers, bound to the store, the clock and the configuration."""

    def __init__(
        self,
        settings: TriageSettings,
        store: TriageStore,
        now: Callable[[], datetime],
        silencing: Silencing,
    ) -> None:
        self.settings = settings
        self.store = store
        self.now = now
        self.silencing = silencing
        self.policy = GroupingPolicy.of(settings)
        self.classify = Classifier(
            settings.rules,
            Level(settings.default_impact),
            Level(settings.default_urgency),
            self.policy.canonical,
        )
        self.playbooks = pb.load_playbooks(settings.playbooks_file)
        self.quiet_period = timedelta(seconds=settings.quiet_period_s)

    async def until_committed(self, attempt: Callable[[], Awaitable[bool]]) -> None:
        for _ in range(_MAX_ATTEMPTS):
            if await attempt():
                return
        raise Contention(f"state changed {_MAX_ATTEMPTS} times while deciding")

    # Alerts ------------------------------------------------------------------------------

    async def on_alerts(self, events: list[Event]) -> None:
        """A batch of alerts, committed at once."""
        await self._apply_split([_Prepared.of(event, self) for event in events])

    async def _apply_split(self, alerts: list[_Prepared]) -> None:
        """Split in halves while another replica's commits keep getting in between, down
        to single alerts that retry on their own."""
        if await self._apply(alerts):
            return
        if len(alerts) == 1:
            await self.until_committed(lambda: self._apply(alerts))
            return
        half = len(alerts) // 2
        await self._apply_split(alerts[:half])
        await self._apply_split(alerts[half:])

    async def _apply(self, alerts: list[_Prepared]) -> bool:
        now = self.now()
        snap = await self.store.read_alerts([a.query for a in alerts], now)
        silences = await self.silencing.index(snap.silences_version)
        # What is remembered of silenced alerts whose fingerprint has no open incident: for
        # the firing ones when silences exist, for the resolved ones always (to forget them).
        known = await self.silencing.remembered(
            [
                a.alert.fingerprint
                for a, read in zip(alerts, snap.reads, strict=True)
                if not (read.done or read.incident_id) and (silences.silences or not a.query.firing)
            ]
        )
        batch = self.store.batch()
        for index, prepared in enumerate(alerts):
            alert = prepared.alert
            if snap.done(index, alert.event_id):
                continue  # a redelivery of an alert already applied
            mapped = snap.mapped(index, alert.fingerprint)
            if mapped is None and self._silenced(batch, prepared, silences, known, now):
                snap.applied.add(alert.event_id)
                continue
            change = (
                on_firing(
                    alert,
                    prepared.service,
                    prepared.verdict,
                    mapped,
                    [] if mapped else snap.candidates(index, prepared.query.related),
                    now,
                    "" if mapped else prepared.new_id,  # an id is used only by a new fingerprint
                    self.policy,
                )
                if prepared.query.firing
                else on_resolved(alert, mapped, now)
            )
            if change is None:
                continue  # a repeat: nothing to store, nothing to say
            if change.opened and prepared.service in snap.drills:
                # The first incident of a drill's service is the drill's (mark used up).
                raw = snap.drills.pop(prepared.service)
                batch.hdel(Keys.DRILLS, prepared.service)
                change = mark_drill(change, raw, now)
            # The playbook is chosen first (SeverityAssigned names it), but its writes come
            # after the severity, so the timeline reads decision → first step.
            steps: list[Callable[[Batch], None]] = []
            change = self._playbook(steps, alert, change, snap.runs)
            write_alert_change(batch, alert, change, self.quiet_period, now)
            for write in steps:
                write(batch)
            snap.apply(alert.event_id, alert.fingerprint, change, now)
        write_incidents(batch, snap.changed())
        return await self.store.commit(snap.versions, batch)

    def _silenced(
        self,
        batch: Batch,
        prepared: _Prepared,
        silences: SilenceIndex,
        known: dict[str, Silenced],
        now: datetime,
    ) -> bool:
        """A new alert (no open incident of its fingerprint) that a silence covers is
        recorded and goes no further; a silenced alert that resolves is forgotten."""
        alert = prepared.alert
        if not prepared.query.firing:
            Silencing.recovered(batch, alert, known.pop(alert.fingerprint, None))
            return False
        found = silences.silencing(prepared.labels, now)
        if found is None:
            return False
        silence, window = found
        known[alert.fingerprint] = Silencing.silence(
            batch, alert, prepared.service, (silence.id, window), known.get(alert.fingerprint)
        )
        return True

    def _playbook(
        self,
        steps: list[Callable[[Batch], None]],
        alert: AlertRaised,
        change: Change,
        runs: dict[str, pb.Run],
    ) -> Change:
        """Start the playbook of a new incident, or switch to the root cause's playbook
        while the running one has only gathered evidence. `runs` (incident → its run) gets
        the run started."""
        if not self.settings.playbooks_enabled:
            return change
        inc = change.incident
        if change.opened:
            spec = self.playbooks.select(inc.root_cause, alert_text(alert))
            return self._start(steps, alert, change, spec, runs)
        run = runs.get(inc.id)
        if change.root_cause_changed and run is not None:
            current = self.playbooks.get(run.playbook)
            spec = self.playbooks.select(inc.root_cause, alert_text(alert))
            if current is not None and spec.name != run.playbook and pb.may_switch(run, current):
                note = (
                    f"playbook {run.playbook} replaced by {spec.name}: probable root cause "
                    f"is now {inc.root_cause}"
                )
                steps.append(lambda batch: write_note(batch, inc.id, note, "switch", spec.name))
                return self._start(steps, alert, change, spec, runs)
        return change

    def _start(
        self,
        steps: list[Callable[[Batch], None]],
        alert: AlertRaised,
        change: Change,
        spec: pb.PlaybookSpec,
        runs: dict[str, pb.Run],
    ) -> Change:
        inc = change.incident
        run = runs[inc.id] = pb.start(inc.id, spec, inc.root_cause)
        request = pb.request_for(run, spec, self.settings.containers)
        # The step reacts to the decision that chose the playbook, when there is one.
        cause = derived_id(alert.event_id, "severity") if change.assigned else alert.event_id
        steps.append(lambda batch: write_step(batch, run, request, cause))
        return replace(change, incident=replace(inc, playbook=spec.name))

    # Playbook steps ----------------------------------------------------------------------

    async def on_action_completed(self, event: Event) -> None:
        assert isinstance(event, ActionCompleted)
        done = event
        if not done.incident_id or not done.playbook:
            return  # an operator's own action: not part of a playbook

        async def attempt() -> bool:
            iid = done.incident_id or ""
            versions, (raw_run,) = await self.store.read([Version.incident(iid)], Keys.run(iid))
            if raw_run is None:
                return True
            run = pb.Run.from_json(raw_run)
            spec = self.playbooks.get(run.playbook)
            if spec is None:
                log.warning("playbook %s of incident %s is gone", run.playbook, run.incident_id)
                return True
            step = pb.advance(run, spec, done.action_id, done.outcome, done.dry_run, done.detail)
            if step is None:
                return True
            batch = self.store.batch()
            batch.stamp(Version.incident(run.incident_id))
            if step.request_next:
                request = pb.request_for(step.run, spec, self.settings.containers)
                write_step(batch, step.run, request, done.event_id)
            else:
                batch.set(Keys.run(run.incident_id), step.run.to_json())
            if step.note:
                write_note(batch, run.incident_id, step.note, done.action_id, done.outcome.value)
            return await self.store.commit(versions, batch)

        await self.until_committed(attempt)

    # Resolution --------------------------------------------------------------------------

    async def on_incident(self, event: Event) -> None:
        if isinstance(event, DrillStarted):
            await self.store.expect_drill(event.service, event.to_json())
            return
        if not isinstance(event, IncidentResolved) or not event.incident_id:
            return
        resolved_by = event.by

        async def attempt() -> bool:
            return await self.close(
                event.incident_id or "", lambda inc: operator_resolve(inc, resolved_by), None
            )

        await self.until_committed(attempt)

    async def resolve_quiet(self) -> int:
        """Resolve every incident whose quiet period has passed; returns how many were due."""
        now = self.now()
        resolved = 0
        for incident_id in await self.store.due_quiet(now):

            def decide(inc: Incident) -> Incident | None:
                return auto_resolve(inc, now, self.quiet_period)

            def announce(inc: Incident) -> IncidentResolved:
                return automatic_resolution(
                    inc,
                    "auto-resolved",
                    f"all {inc.alert_count} alerts of the incident resolved and quiet for "
                    f"{self.quiet_period.total_seconds():g}s",
                )

            async def attempt(iid: str = incident_id) -> bool:
                return await self.close(iid, decide, announce, unschedule_stale=True)

            await self.until_committed(attempt)
            resolved += 1
        return resolved

    async def close(
        self,
        incident_id: str,
        decide: Callable[[Incident], Incident | None],
        announce: Callable[[Incident], IncidentResolved] | None,
        unschedule_stale: bool = False,
    ) -> bool:
        versions, (raw_inc, raw_run) = await self.store.read(
            [Version.incident(incident_id)], Keys.incident(incident_id), Keys.run(incident_id)
        )
        inc = Incident.from_json(raw_inc) if raw_inc else None
        new = decide(inc) if inc else None
        batch = self.store.batch()
        if new is None:
            if not unschedule_stale:
                return True
            # Not (or no longer) due: a re-fire reopened it, or it is gone. Its timer
            # stays only while the incident is still quiet (the re-fire removed it).
            if inc is None or inc.quiet_since is None:
                batch.zrem(Keys.QUIET, incident_id)
            return await self.store.commit(versions, batch)
        run = pb.Run.from_json(raw_run) if raw_run else None
        fingerprints = await self.store.fingerprints(incident_id)
        write_resolution(batch, new, fingerprints, run, announce(new) if announce else None)
        return await self.store.commit(versions, batch)

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "open_incidents": await self.store.open_count()}


@dataclass(frozen=True)
class _Prepared:
    """An alert with what triage makes of it before reading any state."""

    alert: AlertRaised
    service: str
    verdict: Classification
    query: AlertQuery
    labels: dict[str, str]  # what silences match

    @functools.cached_property
    def new_id(self) -> str:
        """The incident it opens, if it opens one (derived only for a new fingerprint)."""
        return derived_id(self.alert.event_id, "incident")

    @classmethod
    def of(cls, event: Event, triage: Triage) -> _Prepared:
        assert isinstance(event, AlertRaised)
        service = triage.policy.canonical(event.service)
        firing = event.status is AlertStatus.FIRING
        return cls(
            event,
            service,
            triage.classify(event),
            AlertQuery(event.event_id, event.fingerprint, firing, triage.policy.related(service)),
            alert_labels(service, event.check, event.labels),
        )


def build(runtime: Runtime) -> Service:
    settings = runtime.settings.triage
    triage = Triage(
        settings,
        TriageStore(runtime.redis),
        runtime.clock.now,
        Silencing(runtime.redis, runtime.alert_admission.seal),
    )

    stale = StaleIncidents(triage, timedelta(seconds=settings.stale_after_s))

    async def resolver() -> None:
        next_stale_check = 0.0
        while True:
            await triage.resolve_quiet()
            if time.monotonic() >= next_stale_check:
                await stale.close_all()
                next_stale_check = time.monotonic() + settings.stale_check_s
            await asyncio.sleep(settings.resolve_check_s)

    async def unsilencer() -> None:
        # Silenced alerts still firing when their window ends come back as new ones.
        while True:
            await triage.silencing.release_due(runtime.clock.now())
            await asyncio.sleep(settings.resolve_check_s)

    return Service(
        name=GROUP,
        consumers=[
            # Alerts come in storms: read them in batches (one XACK per batch). Each alert
            # is still applied on its own, so a redelivered batch is recognised alert by alert.
            runtime.consume(ALERTS, GROUP, batch_handler=triage.on_alerts),
            runtime.consume(ACTIONS_COMPLETED, GROUP, triage.on_action_completed),
            runtime.consume(INCIDENTS, GROUP, triage.on_incident),
        ],
        background=[resolver, unsilencer],
        health=triage.health,
    )
