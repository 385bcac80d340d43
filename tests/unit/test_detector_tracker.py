"""Flap damping, re-notify and polled-alert diffing: the detector's state machines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.detector.probes import PolledAlerts, ProbeResult, ProbeTracker
from shared.events import AlertRaised, AlertStatus, Level

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BAD = ProbeResult("backend", "health", False, "HTTP 503", Level.HIGH, Level.LOW)
GOOD = ProbeResult("backend", "health", True, "healthy")


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_fires_after_n_failures_and_resolves_after_m_successes() -> None:
    tracker = ProbeTracker("backend-health", "backend", "health", fire_after=2, resolve_after=2)
    assert tracker.observe(BAD, _at(0)) is None
    assert tracker.unconfirmed
    fired = tracker.observe(BAD, _at(1))
    assert fired is not None
    assert fired.status is AlertStatus.FIRING
    assert (fired.impact, fired.urgency) == (Level.HIGH, Level.LOW)
    assert fired.starts_at == _at(0)  # the first failure of the streak
    assert fired.summary == "backend health: HTTP 503"
    assert tracker.observe(BAD, _at(2)) is None  # an unchanged state is not re-published
    assert tracker.observe(GOOD, _at(3)) is None
    assert tracker.unconfirmed
    resolved = tracker.observe(GOOD, _at(4))
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.ends_at == _at(4)
    assert resolved.impact is None
    assert not tracker.unconfirmed


def test_a_success_resets_the_failure_count() -> None:
    tracker = ProbeTracker("p", "backend", "health", fire_after=2)
    assert tracker.observe(BAD, _at(0)) is None
    assert tracker.observe(GOOD, _at(1)) is None
    assert tracker.observe(BAD, _at(2)) is None
    assert not tracker.firing


def test_a_failure_during_recovery_keeps_it_firing_without_republishing() -> None:
    tracker = ProbeTracker("p", "backend", "health", fire_after=1, resolve_after=3)
    assert tracker.observe(BAD, _at(0)) is not None
    assert tracker.observe(GOOD, _at(1)) is None
    assert tracker.observe(BAD, _at(2)) is None
    assert tracker.firing


def test_an_unchanged_firing_state_is_renotified_after_the_period() -> None:
    tracker = ProbeTracker("p", "backend", "health", fire_after=1, renotify_s=60)
    first = tracker.observe(BAD, _at(0))
    assert first is not None
    assert tracker.observe(BAD, _at(59)) is None
    again = tracker.observe(BAD, _at(60))
    assert again is not None
    assert again.status is AlertStatus.FIRING
    assert again.fingerprint == first.fingerprint
    assert again.event_id != first.event_id
    assert tracker.observe(BAD, _at(61)) is None


def test_fingerprint_is_stable_per_condition_and_differs_between_them() -> None:
    one = ProbeTracker("docker", "postgres", "container-cpu", fire_after=1)
    two = ProbeTracker("docker", "postgres", "container-cpu", fire_after=1)
    other = ProbeTracker("docker", "postgres", "container-memory", fire_after=1)
    bad = ProbeResult("postgres", "container-cpu", False, "cpu 95%", labels={"container": "pg"})
    a, b = one.observe(bad, _at(0)), two.observe(bad, _at(5))
    c = other.observe(bad, _at(0))
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.labels == {"probe": "docker", "container": "pg"}


def _polled(name: str) -> AlertRaised:
    return AlertRaised(service="node", check=name, fingerprint=f"am:{name}")


def test_polled_alerts_fire_once_renotify_and_resolve_when_gone() -> None:
    polled = PolledAlerts(renotify_s=100)
    a, b = _polled("a"), _polled("b")
    out = polled.observe({"am:a": a, "am:b": b}, _at(0))
    assert [x.fingerprint for x in out] == ["am:a", "am:b"]
    assert polled.observe({"am:a": a, "am:b": b}, _at(10)) == []
    out = polled.observe({"am:a": a}, _at(20))
    assert len(out) == 1
    assert out[0].fingerprint == "am:b"
    assert out[0].status is AlertStatus.RESOLVED
    assert out[0].ends_at == _at(20)
    assert out[0].event_id != b.event_id
    renotified = polled.observe({"am:a": a}, _at(100))
    assert [x.fingerprint for x in renotified] == ["am:a"]
    assert renotified[0].status is AlertStatus.FIRING
