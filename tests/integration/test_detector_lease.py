"""The detector's prober lease on a real Redis (issue 16, detector HA): one prober at a
time, a stale prober fenced out of publishing, a new prober that does not announce again
what its predecessor announced, and alerts that stay sealed."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from services.detector.lease import LEASE, NotProber, ProberLease
from services.detector.probes import Outcome, ProbeResult, Schedule
from services.detector.scheduler import ProbeRunner
from shared.clock import ManualClock
from shared.envelope import AlertAdmission
from shared.events import AlertRaised
from shared.keys import Signer
from shared.streams import ALERTS

pytestmark = pytest.mark.integration

TTL_S = 0.4
_ADMISSION = AlertAdmission(Signer("envelope-key-of-the-lease-tests"))


class _Target:
    """A probe whose target fails or not, as the test says."""

    name = "target"
    service = "backend"
    check = "health"
    schedule = Schedule(interval_s=0.2, timeout_s=0.1)

    def __init__(self) -> None:
        self.ok = False

    async def run(self) -> Outcome:
        return Outcome([ProbeResult("backend", "health", self.ok, "up" if self.ok else "down")])


@pytest.fixture
def leases(redis: Redis) -> tuple[ProberLease, ProberLease]:
    return (
        ProberLease(redis, "replica-a", TTL_S, _ADMISSION.seal),
        ProberLease(redis, "replica-b", TTL_S, _ADMISSION.seal),
    )


def _runner(lease: ProberLease, target: _Target) -> ProbeRunner:
    async def publish(alerts: list[AlertRaised]) -> None:
        await runner.publish_fenced(alerts)

    runner = ProbeRunner(
        [target], publish, ManualClock(), retry_interval_s=0.1, renotify_s=3600, lease=lease
    )
    return runner


async def _alerts(redis: Redis) -> list[tuple[dict[str, object], bool]]:
    """Each alert on the stream, and whether its seal is the detector's."""
    return [
        (json.loads(fields[b"__data__"]), _ADMISSION.sealed(fields))
        for _, fields in await redis.xrange(ALERTS.key)
    ]


async def test_one_prober_at_a_time_and_a_new_epoch_for_each_term(
    redis: Redis, leases: tuple[ProberLease, ProberLease]
) -> None:
    a, b = leases
    assert await a.tick() is True
    assert await b.tick() is False
    assert await a.tick() is True  # renewed: the same term
    first = a.epoch
    assert first is not None
    await a.release()  # a graceful stop hands over at once
    assert not a.is_prober
    assert await b.tick() is True
    assert b.epoch == first + 1
    assert await a.tick() is False


async def test_a_stale_prober_cannot_publish(
    redis: Redis, leases: tuple[ProberLease, ProberLease]
) -> None:
    a, b = leases
    assert await a.tick()
    stale_term = a.term
    assert stale_term is not None
    alert = AlertRaised(service="backend", check="health")
    # A stops renewing (paused, cut off): its lease expires and B takes it.
    await asyncio.sleep(TTL_S + 0.1)
    assert not a.is_prober  # its own clock says its term is over too
    assert await b.tick()
    with pytest.raises(NotProber):
        await a.publish(stale_term, [alert], {"field": "value"})
    assert await redis.xlen(ALERTS.key) == 0
    assert await redis.hlen("jarvis:detector:probe-state") == 0
    # Even one that kept the lease's token: the epoch differs.
    b_term = b.term
    assert b_term is not None
    await b.publish(b_term, [alert], {})
    [(data, sealed)] = await _alerts(redis)
    assert data["event_id"] == alert.event_id
    assert sealed  # a probe alert is the detector's, as sealed as its other alerts


async def test_a_new_prober_does_not_announce_again_what_fired(
    redis: Redis, leases: tuple[ProberLease, ProberLease]
) -> None:
    a, b = leases
    target = _Target()
    first, second = _runner(a, target), _runner(b, target)
    assert await a.tick()
    await first._await_term()
    await first.run_once(target)  # fires (fire_after 1)
    assert [d["status"] for d, _ in await _alerts(redis)] == ["firing"]

    # The prober dies (it never releases); B takes over when the lease expires.
    await asyncio.sleep(TTL_S + 0.1)
    assert await b.tick()
    await second._await_term()
    for _ in range(3):
        await second.run_once(target)  # still failing: nothing new to say
    assert [d["status"] for d, _ in await _alerts(redis)] == ["firing"]
    assert second.health()["target"]["checks"]["backend/health"]["firing"] is True

    target.ok = True
    await second.run_once(target)  # the recovery is announced, once
    await second.run_once(target)
    alerts = await _alerts(redis)
    assert [d["status"] for d, _ in alerts] == ["firing", "resolved"]
    assert all(sealed for _, sealed in alerts)
    assert await redis.hlen("jarvis:detector:probe-state") == 0  # nothing fires


async def test_a_prober_fenced_out_drops_its_alerts(
    redis: Redis, leases: tuple[ProberLease, ProberLease]
) -> None:
    a, b = leases
    target = _Target()
    runner = _runner(a, target)
    assert await a.tick()
    await runner._await_term()
    await redis.delete(LEASE)  # its lease is gone (expired while it was paused) ...
    assert await b.tick()  # ... and another replica took it
    await runner.run_once(target)  # measured, but may not publish
    await runner.run_once(target)
    assert await redis.xlen(ALERTS.key) == 0
    assert not a.is_prober
