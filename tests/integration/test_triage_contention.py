"""Replicas contending for triage's state never send a good alert to the dead-letter
stream (issue 13 case 8): `Contention` is retried like an outage, without counting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.triage import main as triage
from services.triage.store import Batch, TriageStore, Versions
from shared.events import AlertRaised
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER, SEVERITY
from tests.helpers import eventually, read_stream, rival_triage_commit, running, stream_id

pytestmark = pytest.mark.integration

LOST_RACES = 12  # three times what makes triage give up on the alert (4 commits each)


def _consumed(result: str) -> float:
    labels = {"group": triage.GROUP, "stream": ALERTS.key, "result": result}
    return REGISTRY.get_sample_value("jarvis_events_consumed_total", labels) or 0.0


async def test_an_alert_that_loses_every_race_for_a_while_is_retried_not_dead_lettered(
    redis: Redis, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triage, "_MAX_ATTEMPTS", 3)  # triage gives up after 1 + 3 commits
    real_commit = TriageStore.commit
    rival_commits = {"n": 0}

    async def commit_after_a_rival(self: TriageStore, versions: Versions, batch: Batch) -> bool:
        # Another replica commits between triage's read and its commit, again and again:
        # a real write of a version read, so the real conditional commit really fails.
        if rival_commits["n"] < LOST_RACES:
            rival_commits["n"] += 1
            await rival_triage_commit(redis, versions)
        return await real_commit(self, versions, batch)

    monkeypatch.setattr(TriageStore, "commit", commit_after_a_rival)
    settings = make_settings(consumer={"max_deliveries": 1, "reclaim_idle_ms": 200})
    retries, errors = _consumed("retry"), _consumed("error")
    alert = AlertRaised(service="backend", check="health", impact="high", urgency="high")
    async with running(settings, [triage.build]):
        await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
        assigned = await eventually(
            lambda: _severity_of(redis, stream_id(alert.event_id)), timeout=20
        )
    assert assigned["severity"] == "P0"
    assert rival_commits["n"] == LOST_RACES
    assert _consumed("retry") - retries == LOST_RACES // 4  # each Contention retried
    assert _consumed("error") == errors  # and none counted as a failure
    assert await redis.xlen(DEAD_LETTER) == 0


async def _severity_of(redis: Redis, alert_id: str) -> dict[str, object] | None:
    for event in await read_stream(redis, SEVERITY.key):
        if event.get("causation_id") == alert_id:
            return event
    return None
