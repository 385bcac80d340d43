"""Incidents as values, and the pure decisions that group alerts into them.

An alert joins an open incident when it has the incident's fingerprint, when it comes
from a service already in the incident within the grouping window, or when the stack's
dependency graph relates it to a service in the incident (PostgreSQL down explains the
backend degraded). The probable root cause is the failing service that depends on no
other failing service of the incident. Severity only ever rises: to the most severe alert
of the incident, one level more when several systems fail at once. Nothing here does I/O;
`store.py` reads and writes these values atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.triage.classify import Classification
from services.triage.incident import AlertSlot, Incident, Status
from services.triage.rules import most_severe, one_level_up
from shared.events import AlertRaised, Severity
from shared.settings import TriageSettings
from shared.silences import canonical_service

__all__ = [
    "AlertSlot",
    "Change",
    "GroupingPolicy",
    "Incident",
    "Mapped",
    "Status",
    "auto_resolve",
    "choose_incident",
    "on_firing",
    "on_resolved",
    "operator_resolve",
    "root_cause",
]


@dataclass(frozen=True)
class GroupingPolicy:
    window: timedelta
    depends: Mapping[str, frozenset[str]]  # service → everything it depends on, transitively
    multi_system_threshold: int
    aliases: Mapping[str, str]
    relatives: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: TriageSettings) -> GroupingPolicy:
        aliases = {k.lower(): v.lower() for k, v in settings.service_aliases.items()}

        def canon(name: str) -> str:
            return canonical_service(name, aliases)

        direct = {canon(s): {canon(d) for d in deps} for s, deps in settings.dependencies.items()}
        closure: dict[str, frozenset[str]] = {}
        for service in direct:
            seen: set[str] = set()
            todo = list(direct[service])
            while todo:
                dep = todo.pop()
                if dep not in seen and dep != service:
                    seen.add(dep)
                    todo.extend(direct.get(dep, ()))
            closure[service] = frozenset(seen)
        relatives: dict[str, set[str]] = {}
        for service, deps in closure.items():
            relatives.setdefault(service, {service}).update(deps)
            for dep in deps:
                relatives.setdefault(dep, {dep}).add(service)
        return cls(
            window=timedelta(seconds=settings.group_window_s),
            depends=closure,
            multi_system_threshold=settings.multi_system_threshold,
            aliases=aliases,
            relatives={s: tuple(sorted(r)) for s, r in relatives.items()},
        )

    def canonical(self, service: str) -> str:
        """`sutazai-postgres`, `PostgreSQL` and `postgres` are one service."""
        return canonical_service(service, self.aliases)

    def related(self, service: str) -> tuple[str, ...]:
        """`service` and every service it depends on or that depends on it: the services
        whose incidents an alert of `service` may join (see `choose_incident`)."""
        return self.relatives.get(service, (service,))

    def depends_on(self, service: str, other: str) -> bool:
        return other in self.depends.get(service, frozenset())


Mapped = tuple[Incident, AlertSlot]  # a fingerprint's open incident and its slot there


@dataclass(frozen=True)
class Change:
    """What an alert did to an incident; `store`/`main` turn it into writes and events."""

    incident: Incident
    slot: AlertSlot  # the alert's fingerprint's latest word, stored beside the incident
    opened: bool = False
    joined: str | None = None  # why the alert joined (an AlertCorrelated), if it did
    previous_severity: Severity | None = None  # before the change; None when it opened
    assigned: str | None = None  # reason for a SeverityAssigned, if one is due
    reopened: bool = False
    quiet: bool = False  # every alert is resolved now: the quiet period starts
    root_cause_changed: bool = False
    new_service: bool = False  # the slot's service was not in the incident before


def root_cause(services: Sequence[str], policy: GroupingPolicy) -> str:
    """The first failing service that depends on no other service of the incident."""
    for service in services:
        if not any(policy.depends_on(service, other) for other in services if other != service):
            return service
    return services[0]


def choose_incident(
    service: str,
    candidates: Sequence[tuple[Incident, datetime]],
    now: datetime,
    policy: GroupingPolicy,
) -> tuple[Incident, str] | None:
    """The open incident an alert of `service` with a new fingerprint belongs to, and why.

    `candidates` are the open incidents with the time each last saw a firing alert.
    """
    active = sorted(
        (
            inc
            for inc, seen in candidates
            if inc.status is not Status.RESOLVED and now - seen <= policy.window
        ),
        key=lambda inc: (inc.opened_at, inc.id),
    )
    window = f"{policy.window.total_seconds():g}s"
    for inc in active:
        if service in inc.services:
            return inc, f"same service {service} within {window}"
    for inc in active:
        for other in inc.services:
            if policy.depends_on(other, service):
                return inc, f"{other} depends on {service}"
            if policy.depends_on(service, other):
                return inc, f"{service} depends on {other}"
    return None


def on_firing(
    alert: AlertRaised,
    service: str,
    verdict: Classification,
    mapped: Mapped | None,
    candidates: Sequence[tuple[Incident, datetime]],
    now: datetime,
    new_id: str,
    policy: GroupingPolicy,
) -> Change | None:
    """A firing alert: join its fingerprint's incident, a related one, or open a new one.

    `mapped` is the open incident of the alert's fingerprint with the fingerprint's slot.
    None when nothing changes (a repeat of an alert already firing).
    """
    if mapped is not None:
        return _join(mapped[0], mapped[1], alert, service, verdict, "same fingerprint", policy)
    chosen = choose_incident(service, candidates, now, policy)
    if chosen is not None:
        return _join(chosen[0], None, alert, service, verdict, chosen[1], policy)
    slot = _slot(alert, service, verdict)
    incident = Incident(
        id=new_id,
        opened_at=now,
        status=Status.OPEN,
        severity=verdict.severity,
        impact=verdict.impact,
        urgency=verdict.urgency,
        reason=verdict.reason,
        title=alert.summary or f"{alert.service}: {alert.check}",
        root_cause=service,
        services=(service,),
        worst=slot,
        firing={service: 1},
        data_loss=alert.data_loss,
        security=alert.security,
    )
    return Change(incident, slot, opened=True, assigned=verdict.reason, new_service=True)


def _join(
    inc: Incident,
    old: AlertSlot | None,
    alert: AlertRaised,
    service: str,
    verdict: Classification,
    why: str,
    policy: GroupingPolicy,
) -> Change | None:
    if old is not None and old.firing and old.severity.rank <= verdict.severity.rank:
        slot = old  # a repeat never lowers what it said (and it is firing already)
    else:
        slot = _slot(alert, service, verdict)
        if old is not None:
            if not old.firing and alert.occurred_at < old.at:
                return None  # older than the recovery already applied (another replica's)
            if old.severity.rank <= verdict.severity.rank:
                slot = replace(old, firing=True)  # a repeat never lowers what it said
            if not old.firing:
                slot = replace(slot, at=alert.occurred_at)
    firing = dict(inc.firing)
    if old is not None and old.firing:
        firing[old.service] -= 1
    firing[slot.service] = firing.get(slot.service, 0) + 1
    services = inc.services if service in inc.services else (*inc.services, service)
    # Slots' severities only rise, so the most severe one is a running minimum by rank.
    worst = slot if slot.severity.rank < inc.worst.severity.rank else inc.worst
    desired, why_severity = worst.severity, worst.reason
    failing = sorted(s for s, n in firing.items() if n > 0)
    if len(failing) >= policy.multi_system_threshold:
        desired = one_level_up(worst.severity)
        why_severity = f"{len(failing)} systems failing at once ({', '.join(failing)})"
    severity = most_severe(inc.severity, desired)
    rose = severity is not inc.severity
    cause = root_cause(services, policy)
    if (
        slot == old
        and not rose
        and inc.status is Status.OPEN
        and inc.quiet_since is None
        and worst == inc.worst
        and firing == inc.firing
        and services == inc.services
        and cause == inc.root_cause
        and (inc.data_loss or not alert.data_loss)
        and (inc.security or not alert.security)
    ):
        return None  # nothing changes (the incident below would equal `inc`): a repeat
    new = replace(
        inc,
        status=Status.OPEN,
        quiet_since=None,
        worst=worst,
        firing=firing,
        alert_count=inc.alert_count + (old is None),
        services=services,
        root_cause=cause,
        severity=severity,
        impact=worst.impact if rose else inc.impact,
        urgency=worst.urgency if rose else inc.urgency,
        reason=why_severity if rose else inc.reason,
        data_loss=inc.data_loss or alert.data_loss,
        security=inc.security or alert.security,
    )
    assigned: str | None = None
    if rose:
        assigned = f"raised: {why_severity}"
    elif services != inc.services:
        assigned = f"{service} joined ({why})"
    elif (new.data_loss, new.security) != (inc.data_loss, inc.security):
        assigned = "data loss detected" if alert.data_loss else "security breach suspected"
    return Change(
        new,
        slot,
        joined=why if old is None or not old.firing else None,
        previous_severity=inc.severity,
        assigned=assigned,
        reopened=inc.status is Status.QUIET,
        root_cause_changed=new.root_cause != inc.root_cause,
        new_service=services is not inc.services,
    )


def _slot(alert: AlertRaised, service: str, verdict: Classification) -> AlertSlot:
    return AlertSlot(
        service=service,
        firing=True,
        severity=verdict.severity,
        impact=verdict.impact,
        urgency=verdict.urgency,
        reason=verdict.reason,
        at=alert.occurred_at,
    )


def on_resolved(alert: AlertRaised, mapped: Mapped | None, now: datetime) -> Change | None:
    """A recovery: the fingerprint stops firing; the last one starts the quiet period."""
    if mapped is None or mapped[0].status is Status.RESOLVED:
        return None
    inc, old = mapped
    if not old.firing or alert.occurred_at < old.at:
        return None  # already resolved, or older than the firing it would end
    slot = replace(old, firing=False, at=alert.occurred_at)
    firing = {**inc.firing, old.service: inc.firing.get(old.service, 1) - 1}
    quiet = not any(n > 0 for n in firing.values())
    new = replace(
        inc,
        firing=firing,
        status=Status.QUIET if quiet else inc.status,
        quiet_since=now if quiet else None,
    )
    return Change(new, slot, joined="recovery", quiet=quiet)


def auto_resolve(inc: Incident, now: datetime, quiet_period: timedelta) -> Incident | None:
    """Resolved by triage once every alert has been quiet for the whole quiet period."""
    if inc.status is not Status.QUIET or inc.quiet_since is None:
        return None
    if now < inc.quiet_since + quiet_period:
        return None
    return replace(inc, status=Status.RESOLVED, resolved_by="triage")


def operator_resolve(inc: Incident, by: str) -> Incident | None:
    if inc.status is Status.RESOLVED:
        return None
    return replace(inc, status=Status.RESOLVED, resolved_by=by)
