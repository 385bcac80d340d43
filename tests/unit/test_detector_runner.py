"""The probe runner: crashing and hanging probes, unconfirmed re-checks, publish retries."""

from __future__ import annotations

import asyncio

from services.detector.probes import Outcome, ProbeResult, Schedule
from services.detector.scheduler import ProbeRunner
from shared.clock import ManualClock
from shared.events import AlertRaised, AlertStatus


class _Scripted:
    """A probe that plays back outcomes (or raises / hangs)."""

    service = "backend"
    check = "probe"

    def __init__(self, *steps: object, timeout_s: float = 0.05, fire_after: int = 1) -> None:
        self.name = "scripted"
        self.schedule = Schedule(interval_s=1, timeout_s=timeout_s, fire_after=fire_after)
        self._steps = list(steps)

    async def run(self) -> Outcome:
        step = self._steps.pop(0)
        if step == "hang":
            await asyncio.sleep(10)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, bool)
        return Outcome([ProbeResult("backend", "health", step, "ok" if step else "HTTP 500")])


def _runner(probe: _Scripted, sink: list[AlertRaised], fail_publishes: int = 0) -> ProbeRunner:
    failures = {"left": fail_publishes}

    async def publish(alerts: list[AlertRaised]) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("redis away")
        sink.extend(alerts)

    return ProbeRunner([probe], publish, ManualClock(), retry_interval_s=0.1, renotify_s=3600)


async def test_a_crashing_probe_is_a_failed_check_named_after_the_probe() -> None:
    sink: list[AlertRaised] = []
    runner = _runner(_Scripted(RuntimeError("boom")), sink)
    await runner.run_once(runner.probes[0])
    [alert] = sink
    assert (alert.service, alert.check, alert.status) == ("backend", "probe", AlertStatus.FIRING)
    assert "probe failed: RuntimeError: boom" in alert.summary


async def test_a_hanging_probe_is_cut_off() -> None:
    sink: list[AlertRaised] = []
    runner = _runner(_Scripted("hang"), sink)
    await asyncio.wait_for(runner.run_once(runner.probes[0]), 2)
    assert "probe overran" in sink[0].summary
    health = runner.health()["scripted"]
    assert health["checks"]["backend/probe"]["firing"] is True
    assert health["last_run"] is not None


async def test_an_unconfirmed_failure_asks_for_a_quick_recheck() -> None:
    sink: list[AlertRaised] = []
    runner = _runner(_Scripted(False, False, True, fire_after=2), sink)
    assert await runner.run_once(runner.probes[0]) is True  # 1 of 2 failures: re-check soon
    assert sink == []
    assert await runner.run_once(runner.probes[0]) is False  # confirmed and fired
    assert [a.status for a in sink] == [AlertStatus.FIRING]


async def test_alerts_survive_a_failed_publish() -> None:
    sink: list[AlertRaised] = []
    runner = _runner(_Scripted(False, False, True), sink, fail_publishes=1)
    await runner.run_once(runner.probes[0])
    assert sink == []
    await runner.run_once(runner.probes[0])  # still failing: nothing new, the kept alert goes
    assert [a.status for a in sink] == [AlertStatus.FIRING]
    await runner.run_once(runner.probes[0])
    assert [a.status for a in sink] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
