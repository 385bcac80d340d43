"""Runs every probe on its own schedule, feeds the state machines, publishes the alerts,
and keeps each probe's last result for `/health` and `/metrics`.

One asyncio task per probe at a fixed rate, started at a phase spread over its interval so
1,000 targets do not all fire in the same millisecond. A failure that is not yet confirmed
(fewer than `fire_after` in a row) is re-checked after `retry_interval_s`, not a whole
interval later, so damping costs seconds, not intervals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.detector.lease import NotProber, ProberLease
from services.detector.probes import Outcome, PolledAlerts, Probe, ProbeResult, ProbeTracker
from shared.clock import Clock
from shared.events import AlertRaised

__all__ = ["ProbeRunner"]

log = logging.getLogger(__name__)

PROBE_UP = Gauge(
    "jarvis_detector_check_up",
    "Last result of a probed condition (1 ok, 0 failing).",
    ["probe", "service", "check"],
)
PROBE_FIRING = Gauge(
    "jarvis_detector_check_firing",
    "Whether the condition's alert is firing (after damping).",
    ["probe", "service", "check"],
)
PROBE_VALUE = Gauge(
    "jarvis_detector_check_value",
    "The measured value of a condition (%, count, seconds), when it has one.",
    ["probe", "service", "check"],
)
PROBE_DURATION = Histogram(
    "jarvis_detector_probe_duration_seconds",
    "Time one probe run took.",
    ["probe"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
PROBE_ERRORS = Counter(
    "jarvis_detector_probe_errors_total", "Probe runs that crashed or overran.", ["probe"]
)
POLLED_FIRING = Gauge(
    "jarvis_detector_polled_alerts_firing", "Alerts a polled system reports firing.", ["probe"]
)

Publish = Callable[[list[AlertRaised]], Awaitable[None]]


@dataclass
class _State:
    last_run: datetime | None = None
    duration_s: float = 0.0


class ProbeRunner:
    def __init__(
        self,
        probes: Sequence[Probe],
        publish: Publish,
        clock: Clock,
        *,
        retry_interval_s: float,
        renotify_s: float,
        lease: ProberLease | None = None,
    ) -> None:
        self.probes = list(probes)
        self._publish = publish
        self._clock = clock
        self._retry_s = retry_interval_s
        self._renotify_s = renotify_s
        self.trackers: dict[tuple[str, str, str], ProbeTracker] = {}
        self.polled: dict[str, PolledAlerts] = {}
        self._state: dict[str, _State] = {p.name: _State() for p in self.probes}
        self._outbox: list[AlertRaised] = []
        # With a lease: the term probed under, the probe state to store with the alerts
        # (field → value, "" removes it), what a new term restored of its predecessors'.
        self._lease = lease
        self.term: str | None = None
        self._term_lock = asyncio.Lock()
        self.state_outbox: dict[str, str] = {}
        self._restored: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def run_forever(self) -> None:
        await asyncio.gather(*(self._loop(p) for p in self.probes))

    async def _await_term(self) -> None:
        """Until this replica is the prober; a new term starts from the stored state."""
        assert self._lease is not None
        term = await self._lease.wait()
        if term == self.term:
            return
        async with self._term_lock:
            if term != self.term:
                self.restore(await self._lease.state())
                self.term = term

    def restore(self, state: dict[str, str]) -> None:
        """Start over from the probe state stored by the probers before (`lease.py`): what
        fires stays firing (it is not announced again); unconfirmed counts start at zero."""
        self.trackers.clear()
        self.polled.clear()
        self._outbox.clear()
        self.state_outbox.clear()
        self._restored.clear()
        for raw in state.values():
            entry = json.loads(raw)
            if entry["kind"] == "condition":
                self._restored[(entry["probe"], entry["service"], entry["check"])] = entry
            else:
                polled = self.polled.setdefault(entry["probe"], PolledAlerts(self._renotify_s))
                polled.active[entry["fingerprint"]] = (
                    AlertRaised.model_validate_json(entry["alert"]),
                    datetime.fromisoformat(entry["notified_at"]),
                )

    async def _loop(self, probe: Probe) -> None:
        loop = asyncio.get_running_loop()
        interval = probe.schedule.interval_s
        phase = (zlib.crc32(probe.name.encode()) % 1000) / 1000 * min(interval, 5.0)
        next_at = loop.time() + phase
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self._lease is not None:
                await self._await_term()  # a standby waits here; a new prober probes at once
            started = loop.time()
            unconfirmed = await self.run_once(probe)
            delay = self._retry_s if unconfirmed and self._retry_s < interval else interval
            next_at = max(started + delay, loop.time())

    async def run_once(self, probe: Probe) -> bool:
        """Run one probe, publish what changed; True while a change awaits confirmation."""
        outcome = await self._measure(probe)
        alerts = self.observe(probe, outcome, self._clock.now())
        if self._outbox or alerts:
            pending, self._outbox = [*self._outbox, *alerts], []
            try:
                await self._publish(pending)
            except NotProber as exc:  # the next prober probes anew: its alerts, not ours
                log.warning("dropping %d alerts: %s", len(pending), exc)
                self.state_outbox.clear()
            except Exception as exc:  # Redis away: keep them, the next run tries again
                log.warning("publishing %d alerts failed, will retry: %s", len(pending), exc)
                self._outbox = pending + self._outbox
        return any(
            t.unconfirmed
            for r in outcome.results
            if (t := self.trackers.get((probe.name, r.service, r.check))) is not None
        )

    async def _measure(self, probe: Probe) -> Outcome:
        started = time.perf_counter()
        # The probe applies its own timeout to each call; this bound catches one that hangs.
        limit = probe.schedule.timeout_s * 1.5 + 0.5
        try:
            outcome = await asyncio.wait_for(probe.run(), limit)
        except TimeoutError:
            PROBE_ERRORS.labels(probe.name).inc()
            outcome = Outcome([self._crash(probe, f"probe overran {limit:g}s")])
        except Exception as exc:
            PROBE_ERRORS.labels(probe.name).inc()
            log.warning("probe %s failed: %s", probe.name, exc, exc_info=True)
            outcome = Outcome([self._crash(probe, f"probe failed: {type(exc).__name__}: {exc}")])
        state = self._state[probe.name]
        state.duration_s = time.perf_counter() - started
        state.last_run = self._clock.now()
        PROBE_DURATION.labels(probe.name).observe(state.duration_s)
        return outcome

    @staticmethod
    def _crash(probe: Probe, detail: str) -> ProbeResult:
        return ProbeResult(probe.service, probe.check, False, detail[:1000])

    def observe(self, probe: Probe, outcome: Outcome, now: datetime) -> list[AlertRaised]:
        """Feed one outcome to the state machines; the alerts to publish."""
        alerts: list[AlertRaised] = []
        for result in outcome.results:
            key = (probe.name, result.service, result.check)
            tracker = self.trackers.get(key)
            if tracker is None:
                tracker = self.trackers[key] = ProbeTracker(
                    probe.name,
                    result.service,
                    result.check,
                    fire_after=probe.schedule.fire_after,
                    resolve_after=probe.schedule.resolve_after,
                    renotify_s=self._renotify_s,
                )
                if (restored := self._restored.pop(key, None)) is not None:
                    tracker.restore(
                        datetime.fromisoformat(restored["notified_at"]),
                        datetime.fromisoformat(restored["failing_since"]),
                    )
            alert = tracker.observe(result, now)
            if alert is not None:
                alerts.append(alert)
                self._remember_condition(key, tracker)
            PROBE_UP.labels(*key).set(1 if result.ok else 0)
            PROBE_FIRING.labels(*key).set(1 if tracker.firing else 0)
            if result.value is not None:
                PROBE_VALUE.labels(*key).set(result.value)
        if outcome.firing is not None:
            polled = self.polled.setdefault(probe.name, PolledAlerts(self._renotify_s))
            before = dict(polled.active)
            alerts.extend(polled.observe(outcome.firing, now))
            self._remember_polled(probe.name, before, polled.active)
            POLLED_FIRING.labels(probe.name).set(len(polled.active))
        return alerts

    def _remember_condition(self, key: tuple[str, str, str], tracker: ProbeTracker) -> None:
        """The state a next prober needs of a condition that changed (fired, resolved,
        re-notified), stored with its alert."""
        if self._lease is None:
            return
        field = json.dumps(["condition", *key])
        if not tracker.firing or tracker.notified_at is None:
            self.state_outbox[field] = ""
            return
        probe, service, check = key
        self.state_outbox[field] = json.dumps(
            {
                "kind": "condition",
                "probe": probe,
                "service": service,
                "check": check,
                "notified_at": tracker.notified_at.isoformat(),
                "failing_since": (tracker.failing_since or tracker.notified_at).isoformat(),
            }
        )

    def _remember_polled(
        self,
        probe: str,
        before: dict[str, tuple[AlertRaised, datetime]],
        after: dict[str, tuple[AlertRaised, datetime]],
    ) -> None:
        if self._lease is None:
            return
        for fingerprint in before.keys() - after.keys():
            self.state_outbox[json.dumps(["polled", probe, fingerprint])] = ""
        for fingerprint, (alert, notified_at) in after.items():
            if before.get(fingerprint, (None, None))[1] != notified_at:
                self.state_outbox[json.dumps(["polled", probe, fingerprint])] = json.dumps(
                    {
                        "kind": "polled",
                        "probe": probe,
                        "fingerprint": fingerprint,
                        "alert": alert.to_json(),
                        "notified_at": notified_at.isoformat(),
                    }
                )

    async def publish_fenced(self, alerts: list[AlertRaised]) -> None:
        """Publish through the lease, with the probe state gathered since the last publish
        (`NotProber` when this replica's term is over)."""
        assert self._lease is not None
        if self.term is None:
            raise NotProber("no prober term")
        changes, self.state_outbox = self.state_outbox, {}
        try:
            await self._lease.publish(self.term, alerts, changes)
        except NotProber:
            raise
        except Exception:
            self.state_outbox = {**changes, **self.state_outbox}  # with the alerts kept
            raise

    def health(self) -> dict[str, Any]:
        """Each probe's last run and each condition's last result."""
        report: dict[str, Any] = {}
        for probe in self.probes:
            state = self._state[probe.name]
            report[probe.name] = {
                "last_run": state.last_run.isoformat() if state.last_run else None,
                "duration_ms": round(state.duration_s * 1000, 1),
                "checks": {},
            }
            if probe.name in self.polled:
                report[probe.name]["alerts_firing"] = len(self.polled[probe.name].active)
        for (name, service, check), tracker in self.trackers.items():
            last = tracker.last
            report[name]["checks"][f"{service}/{check}"] = {
                "ok": last.ok if last else None,
                "detail": last.detail if last else "not run yet",
                "value": last.value if last else None,
                "firing": tracker.firing,
            }
        return report
