"""What a probe is, and the state machines that turn its results into alerts.

A probe run yields an `Outcome`: zero or more `ProbeResult`s (one per condition it checked,
keyed by service and check) and, for pollers of other monitoring systems, the set of
alerts that system reports as firing right now. `ProbeTracker` damps flapping results
(N failures to fire, M successes to resolve) and re-notifies an unchanged firing state
only every `renotify_s`; `PolledAlerts` turns successive firing sets into firing and
resolved alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.events import AlertRaised, AlertSource, AlertStatus, Level
from shared.ids import new_event_id

__all__ = [
    "Outcome",
    "PolledAlerts",
    "Probe",
    "ProbeResult",
    "ProbeTracker",
    "Schedule",
    "replace_alert",
]


@dataclass(frozen=True)
class ProbeResult:
    """One checked condition: `ok` or not, with the impact/urgency hints of a failure."""

    service: str
    check: str
    ok: bool
    detail: str
    impact: Level = Level.HIGH
    urgency: Level = Level.LOW
    value: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """Everything one probe run learned. `firing` is None when the polled system was not
    reachable: its alerts are then neither re-fired nor resolved."""

    results: list[ProbeResult]
    firing: dict[str, AlertRaised] | None = None


@dataclass(frozen=True)
class Schedule:
    interval_s: float
    timeout_s: float
    fire_after: int = 1
    resolve_after: int = 1


class Probe(Protocol):
    """A side-effecting check of one part of the stack (one real implementation each)."""

    name: str
    service: str  # named in the alert when the probe itself cannot run
    check: str
    schedule: Schedule

    async def run(self) -> Outcome: ...


class ProbeTracker:
    """Firing after `fire_after` consecutive failures, resolved after `resolve_after`
    successes; an unchanged firing state is re-published only every `renotify_s`."""

    def __init__(
        self,
        probe_name: str,
        service: str,
        check: str,
        *,
        fire_after: int = 1,
        resolve_after: int = 1,
        renotify_s: float = 3600.0,
    ) -> None:
        self.probe_name = probe_name
        self.service = service
        self.check = check
        self.fire_after = fire_after
        self.resolve_after = resolve_after
        self.renotify = timedelta(seconds=renotify_s)
        self.firing = False
        self.failures = 0
        self.successes = 0
        self.last: ProbeResult | None = None
        self.failing_since: datetime | None = None
        self._notified_at: datetime | None = None

    @property
    def notified_at(self) -> datetime | None:
        """When the firing alert was last published."""
        return self._notified_at

    def restore(self, notified_at: datetime, failing_since: datetime) -> None:
        """Firing, as another prober left it (it published the alert at `notified_at`)."""
        self.firing = True
        self._notified_at = notified_at
        self.failing_since = failing_since

    @property
    def unconfirmed(self) -> bool:
        """A failure or recovery is under way but not confirmed yet (worth a quick re-check)."""
        if self.firing:
            return 0 < self.successes < self.resolve_after
        return 0 < self.failures < self.fire_after

    def observe(self, result: ProbeResult, now: datetime) -> AlertRaised | None:
        """Feed one result; returns the alert to publish, if any."""
        self.last = result
        if result.ok:
            self.successes += 1
            self.failures = 0
            if self.firing and self.successes >= self.resolve_after:
                self.firing = False
                alert = self._alert(result, AlertStatus.RESOLVED, now)
                self.failing_since = None
                return alert
            if not self.firing:
                self.failing_since = None
            return None
        self.failures += 1
        self.successes = 0
        if self.failing_since is None:
            self.failing_since = now
        if not self.firing and self.failures >= self.fire_after:
            self.firing = True
            self._notified_at = now
            return self._alert(result, AlertStatus.FIRING, now)
        if self.firing and self._notified_at and now - self._notified_at >= self.renotify:
            self._notified_at = now
            return self._alert(result, AlertStatus.FIRING, now)
        return None

    def _alert(self, result: ProbeResult, status: AlertStatus, now: datetime) -> AlertRaised:
        firing = status is AlertStatus.FIRING
        detail = result.detail
        if result.value is not None:
            detail = f"{detail} (value {result.value:g})"
        return AlertRaised(
            producer="detector",
            source=AlertSource.PROBE,
            service=self.service,
            check=self.check,
            status=status,
            summary=f"{self.service} {self.check}: {result.detail}"[:1024],
            description=detail[:16384],
            impact=result.impact if firing else None,
            urgency=result.urgency if firing else None,
            labels={"probe": self.probe_name, **result.labels},
            starts_at=self.failing_since or now,
            ends_at=None if firing else now,
        )


class PolledAlerts:
    """The alerts another monitoring system reports, diffed poll after poll."""

    def __init__(self, renotify_s: float = 3600.0) -> None:
        self.renotify = timedelta(seconds=renotify_s)
        self.active: dict[str, tuple[AlertRaised, datetime]] = {}

    def observe(self, firing: Mapping[str, AlertRaised], now: datetime) -> list[AlertRaised]:
        """New alerts fire, vanished ones resolve, unchanged ones re-notify when due."""
        out: list[AlertRaised] = []
        for fingerprint, alert in firing.items():
            known = self.active.get(fingerprint)
            if known is None or now - known[1] >= self.renotify:
                self.active[fingerprint] = (alert, now)
                out.append(alert)
        for fingerprint in [fp for fp in self.active if fp not in firing]:
            alert, _ = self.active.pop(fingerprint)
            out.append(
                replace_alert(alert, status=AlertStatus.RESOLVED, ends_at=now, occurred_at=now)
            )
        return out


def replace_alert(alert: AlertRaised, **changes: object) -> AlertRaised:
    """A copy of `alert` with `changes` and a new event id (it is a new fact)."""
    data = alert.model_dump()
    data.update(changes, event_id=new_event_id())
    return AlertRaised.model_validate(data)
