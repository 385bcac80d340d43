"""Alert storms through real Redis: exactly the expected incidents, also with two triage
replicas reading one consumer group at once (the duplicate-ticket race)."""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.remediator import main as remediator
from services.triage import main as triage
from services.triage.store import Keys
from shared.envelope import STREAM, owned_fingerprint
from shared.events import AlertRaised, Level
from shared.settings import Settings
from shared.streams import ACTIONS_COMPLETED, ACTIONS_REQUESTED, ALERTS, INCIDENTS, SEVERITY
from tests.helpers import eventually, read_stream, running, settled

pytestmark = pytest.mark.integration

LEVELS = (Level.LOW, Level.MEDIUM, Level.HIGH)


async def _publish(redis: Redis, alerts: list[AlertRaised], chunk: int = 1000) -> None:
    for start in range(0, len(alerts), chunk):
        pipe = redis.pipeline(transaction=False)
        for alert in alerts[start : start + chunk]:
            pipe.xadd(ALERTS.key, {"__data__": alert.to_json()})
        await pipe.execute()


def _sent(fingerprint: str) -> str:
    """The fingerprint an alert XADDed by another system has: within the `stream` sender's
    namespace (shared.envelope)."""
    return owned_fingerprint(STREAM, fingerprint)


async def _drained(redis: Redis, key: str, group: str) -> bool:
    return await settled(redis, key, group)


def _by_incident(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        out[e["incident_id"]].append(e)
    return out


async def test_storm_of_10000_alerts_over_10_fingerprints(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # Fingerprint k belongs to service storm-(k // 2): two fingerprints per service, five
    # unrelated services, so exactly five incidents. Severities cycle P3 → P2 → P1.
    alerts = [
        AlertRaised(
            fingerprint=f"storm-fp-{i % 10}",
            service=f"storm-{(i % 10) // 2}",
            check="load",
            impact=LEVELS[(i // 10) % 3],
            urgency=Level.LOW,
        )
        for i in range(10_000)
    ]
    settings = make_settings(triage={"playbooks_enabled": False})
    await _publish(redis, alerts)
    async with running(settings, [triage.build]):
        await eventually(lambda: _drained(redis, ALERTS.key, "triage"), timeout=120)
    assigned = await read_stream(redis, SEVERITY.key)
    incidents = _by_incident(assigned)
    assert len(incidents) == 5
    for events in incidents.values():
        assert events[0]["previous_severity"] is None
        assert [e["previous_severity"] is None for e in events].count(True) == 1
        assert events[-1]["severity"] == "P1"
        ranks = [int(e["severity"][1]) for e in events]
        assert ranks == sorted(ranks, reverse=True)  # only ever rises
        assert len({e["service"] for e in events}) == 1
    correlated = await read_stream(redis, INCIDENTS.key)
    # The second fingerprint of each service joins its incident once; repeats say nothing.
    assert len(correlated) == 5
    assert all(c["reason"].startswith("same service") for c in correlated)
    for k in range(10):
        incident_id = (await redis.get(Keys.fingerprint(_sent(f"storm-fp-{k}")))).decode()
        assert incident_id in incidents
    assert await redis.scard(Keys.OPEN) == 5


async def test_two_triage_replicas_on_one_group_produce_no_duplicates(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # 10 fingerprints on the backend and 10 on PostgreSQL (one incident: the dependency
    # graph), 10 on unrelated services (10 incidents): 11 incidents in all.
    fingerprints = (
        [(f"b-{k}", "backend") for k in range(10)]
        + [(f"p-{k}", "sutazai-postgres") for k in range(10)]
        + [(f"u-{k}", f"unrelated-{k}") for k in range(10)]
    )
    alerts = [
        AlertRaised(
            fingerprint=fingerprints[i % 30][0],
            service=fingerprints[i % 30][1],
            check="health",
            impact=LEVELS[(i // 30) % 3],
            urgency=Level.MEDIUM,
        )
        for i in range(3000)
    ]
    settings = make_settings(consumer={"max_records": 20})
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(running(settings, [triage.build, remediator.build]))
        await _publish(redis, alerts, chunk=100)
        await eventually(lambda: _drained(redis, ALERTS.key, "triage"), timeout=120)
        await eventually(lambda: _drained(redis, ACTIONS_COMPLETED.key, "triage"), timeout=60)
        await eventually(lambda: _drained(redis, ACTIONS_REQUESTED.key, "remediator"))
        consumers = await redis.xinfo_consumers(ALERTS.key, "triage")
    assert len(consumers) == 2

    assigned = await read_stream(redis, SEVERITY.key)
    incidents = _by_incident(assigned)
    assert len(incidents) == 11
    opened = [e for e in assigned if e["previous_severity"] is None]
    assert len(opened) == 11
    mapped = {fp: (await redis.get(Keys.fingerprint(_sent(fp)))).decode() for fp, _ in fingerprints}
    assert len(set(mapped.values())) == 11
    assert len({mapped[f"b-{k}"] for k in range(10)} | {mapped[f"p-{k}"] for k in range(10)}) == 1

    for key in (SEVERITY.key, INCIDENTS.key, ACTIONS_REQUESTED.key, ACTIONS_COMPLETED.key):
        entries = await read_stream(redis, key)
        duplicates = [i for i, n in Counter(e["event_id"] for e in entries).items() if n > 1]
        assert duplicates == [], key
    requested = await read_stream(redis, ACTIONS_REQUESTED.key)
    action_ids = [r["action_id"] for r in requested]
    assert len(action_ids) == len(set(action_ids))  # no playbook step requested twice
    for incident_id, steps in _by_incident(requested).items():
        per_playbook: dict[str, list[int]] = defaultdict(list)
        for r in steps:
            per_playbook[r["playbook"]].append(r["step"])
        for numbers in per_playbook.values():
            assert numbers == list(range(len(numbers))), incident_id
