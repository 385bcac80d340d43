"""Grouping alerts into incidents: fingerprints, windows, the dependency graph, severity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.triage.classify import Classification
from services.triage.grouping import (
    Change,
    GroupingPolicy,
    Incident,
    Mapped,
    Status,
    auto_resolve,
    on_firing,
    on_resolved,
    operator_resolve,
    root_cause,
)
from services.triage.rules import severity_for
from shared.events import AlertRaised, AlertStatus, Level, Severity
from shared.settings import TriageSettings

POLICY = GroupingPolicy.of(TriageSettings(group_window_s=300))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def verdict(impact: Level, urgency: Level = Level.LOW) -> Classification:
    return Classification(impact, urgency, severity_for(impact, urgency), "test")


def fire(
    service: str, fp: str, impact: Level = Level.MEDIUM, at: datetime = T0, **kw: object
) -> tuple[AlertRaised, Classification]:
    alert = AlertRaised(fingerprint=fp, service=service, occurred_at=at, **kw)  # type: ignore[arg-type]
    return alert, verdict(impact)


def open_one(service: str = "backend", fp: str = "fp-1", impact: Level = Level.MEDIUM) -> Mapped:
    """A new incident, with the opening fingerprint's slot there."""
    alert, v = fire(service, fp, impact)
    change = on_firing(alert, POLICY.canonical(service), v, None, [], T0, "inc-1", POLICY)
    assert change is not None
    assert change.opened
    return change.incident, change.slot


def mapped(change: Change | None) -> Mapped:
    assert change is not None
    return change.incident, change.slot


def test_canonical_service_names() -> None:
    assert POLICY.canonical("sutazai-postgres") == "postgres"
    assert POLICY.canonical("PostgreSQL") == "postgres"
    assert POLICY.canonical(" Backend ") == "backend"
    assert POLICY.depends_on("backend", "postgres")
    assert not POLICY.depends_on("postgres", "backend")


def test_opening_records_everything() -> None:
    inc, _slot = open_one()
    assert (inc.status, inc.severity, inc.root_cause, inc.services) == (
        Status.OPEN,
        Severity.P2,
        "backend",
        ("backend",),
    )
    assert Incident.from_json(inc.to_json()) == inc


def test_repeat_of_a_firing_alert_changes_nothing() -> None:
    inc, slot = open_one()
    alert, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=5))
    assert on_firing(alert, "backend", v, (inc, slot), [], T0, "x", POLICY) is None
    milder, low = fire("backend", "fp-1", Level.LOW)
    assert on_firing(milder, "backend", low, (inc, slot), [], T0, "x", POLICY) is None


def test_a_repeat_that_brings_something_new_still_changes_the_incident() -> None:
    """Repeats are decided without building the incident anew: only when nothing changes."""
    inc, slot = open_one()
    for flag in ("data_loss", "security"):
        alert, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=5), **{flag: True})
        change = on_firing(alert, "backend", v, (inc, slot), [], T0, "x", POLICY)
        assert change is not None
        assert getattr(change.incident, flag)
        assert change.slot == slot
        assert change.assigned is not None
    # A policy that now counts one failing system as many raises the incident on a repeat.
    eager = replace(POLICY, multi_system_threshold=1)
    alert, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=5))
    change = on_firing(alert, "backend", v, (inc, slot), [], T0, "x", eager)
    assert change is not None
    assert change.incident.severity is Severity.P1
    # A repeat of an incident that is quiet (an operator's view of it) reopens it.
    quiet = replace(inc, status=Status.QUIET, quiet_since=T0)
    change = on_firing(alert, "backend", v, (quiet, slot), [], T0, "x", POLICY)
    assert change is not None
    assert change.incident.status is Status.OPEN


def test_same_service_joins_only_within_the_window() -> None:
    inc, _slot = open_one()
    alert, v = fire("backend", "fp-2")
    inside = on_firing(
        alert, "backend", v, None, [(inc, T0)], T0 + timedelta(seconds=299), "n", POLICY
    )
    assert inside is not None
    assert inside.incident.id == "inc-1"
    assert inside.joined == "same service backend within 300s"
    outside = on_firing(
        alert, "backend", v, None, [(inc, T0)], T0 + timedelta(seconds=301), "n", POLICY
    )
    assert outside is not None
    assert (outside.opened, outside.incident.id) == (True, "n")


def test_dependency_down_becomes_the_root_cause() -> None:
    inc, _slot = open_one("backend", impact=Level.MEDIUM)
    alert, v = fire("sutazai-postgres", "fp-pg", Level.HIGH)
    change = on_firing(alert, "postgres", v, None, [(inc, T0)], T0, "n", POLICY)
    assert change is not None
    assert change.incident.id == "inc-1"
    assert change.joined == "backend depends on postgres"
    assert change.root_cause_changed
    assert change.incident.root_cause == "postgres"
    assert (change.previous_severity, change.incident.severity) == (Severity.P2, Severity.P1)
    assert change.assigned == "raised: test"


def test_dependent_failing_later_keeps_the_root_cause() -> None:
    inc, _slot = open_one("postgres", "fp-pg", Level.HIGH)
    alert, v = fire("backend", "fp-b", Level.MEDIUM)
    change = on_firing(alert, "backend", v, None, [(inc, T0)], T0, "n", POLICY)
    assert change is not None
    assert change.incident.root_cause == "postgres"
    assert not change.root_cause_changed
    assert change.incident.severity is Severity.P1
    assert change.previous_severity is Severity.P1  # unchanged, but a service joined
    assert change.assigned == "backend joined (backend depends on postgres)"


def test_unrelated_services_open_separate_incidents() -> None:
    inc, _slot = open_one("postgres", "fp-pg")
    alert, v = fire("grafana", "fp-g")
    change = on_firing(alert, "grafana", v, None, [(inc, T0)], T0, "n", POLICY)
    assert change is not None
    assert change.opened


def test_several_failing_systems_raise_one_level_and_recoveries_never_lower() -> None:
    inc, slot = open_one("postgres", "fp-pg", Level.MEDIUM)
    for service in ("backend", "redis"):
        alert, v = fire(service, f"fp-{service}", Level.MEDIUM)
        inc, slot = mapped(on_firing(alert, service, v, None, [(inc, T0)], T0, "n", POLICY))
    assert inc.severity is Severity.P1
    assert inc.reason == "3 systems failing at once (backend, postgres, redis)"
    resolved = AlertRaised(
        fingerprint="fp-redis", service="redis", status=AlertStatus.RESOLVED, occurred_at=T0
    )
    after = on_resolved(resolved, (inc, slot), T0)
    assert after is not None
    assert after.incident.severity is Severity.P1
    assert after.assigned is None


def test_root_cause_picks_the_deepest_failing_service() -> None:
    assert root_cause(("backend", "postgres"), POLICY) == "postgres"
    assert root_cause(("grafana", "loki", "backend"), POLICY) == "loki"
    assert root_cause(("x", "y"), POLICY) == "x"


def test_quiet_period_and_reopen() -> None:
    inc, slot = open_one()
    resolved = AlertRaised(
        fingerprint="fp-1", service="backend", status=AlertStatus.RESOLVED, occurred_at=T0
    )
    quiet = on_resolved(resolved, (inc, slot), T0 + timedelta(seconds=10))
    assert quiet is not None
    assert quiet.quiet
    assert quiet.incident.status is Status.QUIET
    period = timedelta(seconds=60)
    assert auto_resolve(quiet.incident, T0 + timedelta(seconds=69), period) is None
    refire, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=20))
    reopened = on_firing(refire, "backend", v, mapped(quiet), [], T0, "x", POLICY)
    assert reopened is not None
    assert reopened.reopened
    assert reopened.incident.status is Status.OPEN
    assert reopened.incident.quiet_since is None
    done = auto_resolve(quiet.incident, T0 + timedelta(seconds=70), period)
    assert done is not None
    assert (done.status, done.resolved_by) == (Status.RESOLVED, "triage")


def test_out_of_order_updates_from_replicas_are_ignored() -> None:
    inc, slot = open_one()  # firing at T0
    late_resolve = AlertRaised(
        fingerprint="fp-1",
        service="backend",
        status=AlertStatus.RESOLVED,
        occurred_at=T0 - timedelta(seconds=1),
    )
    assert on_resolved(late_resolve, (inc, slot), T0) is None
    resolve = AlertRaised(
        fingerprint="fp-1",
        service="backend",
        status=AlertStatus.RESOLVED,
        occurred_at=T0 + timedelta(seconds=5),
    )
    quiet = on_resolved(resolve, (inc, slot), T0)
    assert quiet is not None
    stale_fire, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=3))
    assert on_firing(stale_fire, "backend", v, mapped(quiet), [], T0, "x", POLICY) is None


def test_operator_resolution_is_idempotent() -> None:
    inc, slot = open_one()
    done = operator_resolve(inc, "alice")
    assert done is not None
    assert done.resolved_by == "alice"
    assert operator_resolve(done, "bob") is None
    assert (
        on_resolved(
            AlertRaised(fingerprint="fp-1", service="backend", status=AlertStatus.RESOLVED),
            (done, slot),
            T0,
        )
        is None
    )


def test_data_loss_flag_is_kept_and_announced() -> None:
    inc, _slot = open_one("postgres", "fp-pg", Level.HIGH)
    alert, _ = fire("postgres", "fp-loss", data_loss=True)
    change = on_firing(
        alert, "postgres", verdict(Level.HIGH, Level.HIGH), None, [(inc, T0)], T0, "x", POLICY
    )
    assert change is not None
    assert change.incident.data_loss
    assert change.incident.severity is Severity.P0


def test_related_services_are_the_candidates_choose_incident_can_pick() -> None:
    # Transitive both ways: backend depends on postgres; grafana's chain reaches loki.
    assert "postgres" in POLICY.related("backend")
    assert "backend" in POLICY.related("postgres")
    assert "loki" in POLICY.related("grafana")
    assert "grafana" not in POLICY.related("postgres")
    assert POLICY.related("unknown-service") == ("unknown-service",)
    for service, relatives in POLICY.relatives.items():
        for other in POLICY.relatives:
            related = POLICY.depends_on(service, other) or POLICY.depends_on(other, service)
            assert (other in relatives) == (related or other == service)


def test_incident_counts_firing_fingerprints_and_keeps_the_worst_slot() -> None:
    inc, slot = open_one("backend", "fp-1", Level.MEDIUM)
    alert, v = fire("backend", "fp-2", Level.HIGH)
    both = mapped(on_firing(alert, "backend", v, None, [(inc, T0)], T0, "n", POLICY))
    assert (both[0].firing, both[0].alert_count) == ({"backend": 2}, 2)
    assert both[0].worst == both[1]  # fp-2's slot is the more severe one
    resolved = AlertRaised(
        fingerprint="fp-1", service="backend", status=AlertStatus.RESOLVED, occurred_at=T0
    )
    one_left = on_resolved(resolved, (both[0], slot), T0)
    assert one_left is not None
    assert not one_left.quiet  # fp-2 still fires
    assert (one_left.incident.firing, one_left.incident.failing) == ({"backend": 1}, ("backend",))
    assert one_left.incident.worst == both[1]  # a recovery never lowers the worst
    refire, v = fire("backend", "fp-1", at=T0 + timedelta(seconds=1))
    again = on_firing(refire, "backend", v, mapped(one_left), [], T0, "x", POLICY)
    assert again is not None
    assert (again.incident.firing, again.incident.alert_count) == ({"backend": 2}, 2)
