"""Triage applies a batch of alerts with one read and one commit: each alert must be decided
on the state the alerts before it in the batch left, exactly as if they came one by one,
and a batch that loses the race against another replica's commit is split and retried."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.triage.main import Triage
from services.triage.silencing import Silencing
from services.triage.store import AlertQuery, Keys, TriageStore
from shared.envelope import AlertAdmission
from shared.events import AlertRaised, AlertStatus, Event, Level
from shared.keys import Signer
from shared.settings import Settings
from shared.silence_store import VERSION_KEY as SILENCES_VERSION
from shared.streams import ACTIONS_REQUESTED, INCIDENTS, SEVERITY
from tests.helpers import read_stream, rival_triage_commit

pytestmark = pytest.mark.integration
# Alerts put back after a silence are sealed as the detector's (shared.envelope).
_SEAL = AlertAdmission(Signer("envelope-key-of-the-triage-batch-tests")).seal

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _alert(n: int, service: str, fp: str, **kw: Any) -> AlertRaised:
    return AlertRaised(
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        fingerprint=fp,
        service=service,
        check=fp,
        summary=f"{service} {fp}",
        occurred_at=T0 + timedelta(seconds=n),
        **kw,
    )


def _batch() -> list[Event]:
    """Alerts whose decisions depend on the ones before them in the same batch."""
    backend = _alert(1, "backend", "fp-backend", impact=Level.MEDIUM)
    return [
        backend,  # opens an incident and starts its playbook
        backend,  # the same event twice (a redelivery): applied once
        _alert(2, "backend", "fp-backend-2"),  # same service: joins the incident above
        _alert(3, "sutazai-postgres", "fp-pg", impact=Level.HIGH),  # root cause, raises to P1
        _alert(4, "grafana", "fp-grafana"),  # unrelated: a second incident
        _alert(5, "backend", "fp-backend", status=AlertStatus.RESOLVED),  # recovery
        _alert(6, "redis", "fp-redis", impact=Level.MEDIUM),  # a third system: one level up
        _alert(7, "redis", "fp-redis", impact=Level.LOW),  # a milder repeat: nothing new
    ]


async def _outcome(redis: Redis) -> dict[str, Any]:
    """What triage published and stored, without Redis's entry ids."""
    out: dict[str, Any] = {}
    for key in (SEVERITY.key, INCIDENTS.key, ACTIONS_REQUESTED.key):
        out[key] = [
            {k: v for k, v in e.items() if k not in ("occurred_at", "_entry_id")}
            for e in await read_stream(redis, key)
        ]
    for raw in sorted(await redis.keys(Keys.PREFIX + "*")):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if key in (Keys.VERSIONS, Keys.SEQUENCE):
            continue  # how many commits it took is exactly what differs
        if kind == "set":
            out[key] = sorted(await redis.smembers(key))
        elif kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = await redis.get(key)
    return out


def _triage(settings: Settings, redis: Redis) -> Triage:
    return Triage(
        settings.triage,
        TriageStore(redis),
        lambda: T0 + timedelta(seconds=10),
        Silencing(redis, _SEAL),
    )


async def test_a_batch_decides_exactly_as_alerts_one_at_a_time(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    one_by_one = _triage(settings, redis)
    for event in _batch():
        await one_by_one.on_alerts([event])
    expected = await _outcome(redis)
    await redis.flushall()

    await _triage(settings, redis).on_alerts(_batch())
    assert await _outcome(redis) == expected

    opened = [e for e in expected[SEVERITY.key] if e["previous_severity"] is None]
    assert [e["service"] for e in opened] == ["backend", "grafana"]
    final = [e for e in expected[SEVERITY.key] if e["incident_id"] == opened[0]["incident_id"]]
    assert (final[-1]["root_cause"], final[-1]["severity"]) == ("postgres", "P0")
    correlated = [e.get("fingerprint") for e in expected[INCIDENTS.key]]
    assert correlated == ["fp-backend-2", "fp-pg", None, "fp-backend", "fp-redis"]  # None: a note
    # The backend playbook's first step, its switch to the root cause's, grafana's.
    requested = [(e["playbook"], e["target"]) for e in expected[ACTIONS_REQUESTED.key]]
    assert requested == [
        ("backend_api_unresponsive", "backend"),
        ("database_connection_failures", "sutazai-postgres"),
        ("diagnostics_only", "sutazai-grafana"),
    ]


async def test_a_batch_that_loses_a_race_is_split_and_still_applied_once(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(triage={"playbooks_enabled": False})
    store = TriageStore(redis)
    triage = Triage(
        settings.triage, store, lambda: T0 + timedelta(seconds=10), Silencing(redis, _SEAL)
    )
    commit = store.commit
    lost: list[int] = []

    async def racing_commit(versions: dict[str, str], batch: Any) -> bool:
        # Another replica commits before each of our first three commits.
        if len(lost) < 3:
            lost.append(len(batch.commands))
            await rival_triage_commit(redis, versions)
        return await commit(versions, batch)

    store.commit = racing_commit  # type: ignore[method-assign]
    events = [_alert(n, f"svc-{n % 3}", f"fp-{n}") for n in range(1, 9)]
    await triage.on_alerts(events)
    assert lost[0] > lost[1] > 0  # the whole batch, then a half of it
    assigned = await read_stream(redis, SEVERITY.key)
    correlated = await read_stream(redis, INCIDENTS.key)
    assert sorted(e["fingerprint"] for e in assigned if e["previous_severity"] is None) == [
        "fp-1",
        "fp-2",
        "fp-3",
    ]
    assert sorted(e["fingerprint"] for e in correlated) == ["fp-4", "fp-5", "fp-6", "fp-7", "fp-8"]
    await triage.on_alerts(events)  # a redelivery of the whole batch publishes nothing
    assert len(await read_stream(redis, SEVERITY.key)) == len(assigned)


async def test_the_silences_version_comes_with_the_alerts_state(redis: Redis) -> None:
    """No round trip of its own per batch: the read script returns it."""
    store = TriageStore(redis)
    query = AlertQuery("00000000-0000-4000-8000-000000000001", "fp-1", True, ("backend",))
    assert (await store.read_alerts([query], T0)).silences_version is None
    await redis.set(SILENCES_VERSION, "7")
    assert (await store.read_alerts([query], T0)).silences_version == b"7"
