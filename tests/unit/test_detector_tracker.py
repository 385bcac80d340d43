"""Flap damping and state changes of a probe."""

from __future__ import annotations

from services.detector.probes import ProbeResult, ProbeTracker
from shared.events import AlertStatus


class _Probe:
    name = "p"
    service = "backend"
    check = "health"

    async def run(self) -> ProbeResult:  # pragma: no cover - not called
        raise NotImplementedError


def test_fires_after_n_failures_and_resolves_after_m_successes() -> None:
    tracker = ProbeTracker(_Probe(), fire_after=2, resolve_after=2)
    bad, good = ProbeResult(False, "down"), ProbeResult(True, "ok")
    assert tracker.observe(bad) is None
    fired = tracker.observe(bad)
    assert fired is not None
    assert fired.status is AlertStatus.FIRING
    assert tracker.observe(bad) is None  # unchanged state is not re-published
    assert tracker.observe(good) is None
    resolved = tracker.observe(good)
    assert resolved is not None
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == fired.fingerprint


def test_a_success_resets_the_failure_count() -> None:
    tracker = ProbeTracker(_Probe(), fire_after=2)
    bad, good = ProbeResult(False, "down"), ProbeResult(True, "ok")
    assert tracker.observe(bad) is None
    assert tracker.observe(good) is None
    assert tracker.observe(bad) is None
