"""Two triage replicas on one Redis (issue 16): a commit is conditional only on what its
decisions read, so replicas handling unrelated fingerprints never conflict, while two
replicas racing on one fingerprint, or on related services, still end in one incident.

The race is made exact, not left to timing: replica A reads, replica B then decides and
commits everything it has, and only then does A commit what it decided on its read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from services.recorder.db import migrate
from services.recorder.queries import Reader
from services.recorder.store import TimelineStore
from services.triage.main import Triage
from services.triage.silencing import Silencing
from services.triage.store import Batch, TriageStore
from shared.envelope import AlertAdmission
from shared.events import (
    ActionCompleted,
    ActionOutcome,
    AlertCorrelated,
    AlertRaised,
    Event,
    SeverityAssigned,
    parse_event,
)
from shared.keys import Signer
from shared.settings import Settings
from shared.streams import ACTIONS_REQUESTED, INCIDENTS, SEVERITY
from tests.helpers import read_stream

pytestmark = pytest.mark.integration

_SEAL = AlertAdmission(Signer("envelope-key-of-the-triage-replica-tests")).seal
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Replica:
    """One triage replica with its own store; counts the commits it lost."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.store = TriageStore(redis)
        self.triage = Triage(
            settings.triage, self.store, lambda: T0 + timedelta(seconds=30), Silencing(redis, _SEAL)
        )
        self.commits = 0
        self.lost = 0
        self._before_first_commit: Callable[[], Awaitable[None]] | None = None
        real = self.store.commit

        async def commit(versions: Any, batch: Batch) -> bool:
            hook, self._before_first_commit = self._before_first_commit, None
            if hook is not None:
                await hook()  # the rival commits between our read and our commit
            ok = await real(versions, batch)
            self.commits += 1
            self.lost += not ok
            return ok

        self.store.commit = commit  # type: ignore[method-assign]

    async def race(self, mine: list[Event], rival: Replica, theirs: list[Event]) -> None:
        """Read for `mine`; the rival applies `theirs` completely; then commit `mine`."""

        async def rival_goes_first() -> None:
            await rival.triage.on_alerts(theirs)

        self._before_first_commit = rival_goes_first
        await self.triage.on_alerts(mine)


def _alert(n: int, service: str, fingerprint: str) -> AlertRaised:
    return AlertRaised(
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        fingerprint=fingerprint,
        service=service,
        check="health",
        summary=f"{service} {fingerprint}",
        impact="medium",
        urgency="medium",
        occurred_at=T0 + timedelta(seconds=n),
    )


async def _opened(redis: Redis) -> list[dict[str, Any]]:
    return [e for e in await read_stream(redis, SEVERITY.key) if e["previous_severity"] is None]


@pytest.fixture
def replicas(redis: Redis, make_settings: Callable[..., Settings]) -> tuple[Replica, Replica]:
    settings = make_settings()
    return Replica(settings, redis), Replica(settings, redis)


async def test_replicas_on_unrelated_fingerprints_never_conflict(
    redis: Redis, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    # Batches of new fingerprints of unrelated services, and then repeats of them with a
    # higher severity (joins of their incidents): neither replica reads what the other writes.
    mine = [_alert(n, f"svc-a{n}", f"fp-a{n}") for n in range(1, 6)]
    theirs = [_alert(100 + n, f"svc-b{n}", f"fp-b{n}") for n in range(1, 6)]
    await a.race(mine, b, theirs)
    later_mine = [_alert(200 + n, f"svc-a{n}", f"fp-a{n}-2") for n in range(1, 6)]
    later_theirs = [_alert(300 + n, f"svc-b{n}", f"fp-b{n}-2") for n in range(1, 6)]
    await a.race(later_mine, b, later_theirs)
    assert (a.lost, b.lost) == (0, 0)
    assert (a.commits, b.commits) == (2, 2)  # each batch in one commit, not split
    assert len(await _opened(redis)) == 10
    joined = [e["fingerprint"] for e in await read_stream(redis, INCIDENTS.key)]
    assert sorted(joined) == sorted(e.fingerprint for e in later_mine + later_theirs)


async def test_replicas_racing_on_one_fingerprint_open_one_incident(
    redis: Redis, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    # Two deliveries of alerts of one new fingerprint (different events: a repeat by the
    # sender) reach the two replicas at once: both read "no incident".
    await a.race([_alert(1, "backend", "fp-1")], b, [_alert(2, "backend", "fp-1")])
    assert (a.lost, b.lost) == (1, 0)  # A's commit was refused, A decided again
    opened = await _opened(redis)
    assert len(opened) == 1
    # One playbook, one first step.
    requested = await read_stream(redis, ACTIONS_REQUESTED.key)
    assert [e["incident_id"] for e in requested] == [opened[0]["incident_id"]]


async def test_replicas_racing_on_the_same_event_apply_it_once(
    redis: Redis, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    alert = _alert(1, "grafana", "fp-1")  # one entry delivered twice (reclaimed)
    await a.race([alert], b, [alert])
    assert len(await _opened(redis)) == 1
    assert len(await read_stream(redis, ACTIONS_REQUESTED.key)) == 1


async def test_replicas_racing_on_related_services_still_group_them(
    redis: Redis, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    # backend depends on postgres (the default dependency graph): a new backend fingerprint
    # read no candidates while the other replica opened the postgres incident; it must see
    # that incident when it decides again, and join it.
    await a.race([_alert(1, "backend", "fp-backend")], b, [_alert(2, "postgres", "fp-pg")])
    assert a.lost == 1
    opened = await _opened(redis)
    assert [e["service"] for e in opened] == ["postgres"]
    correlated = await read_stream(redis, INCIDENTS.key)
    assert [(e["fingerprint"], e["incident_id"]) for e in correlated] == [
        ("fp-backend", opened[0]["incident_id"])
    ]
    # A new fingerprint of a service already in the incident, raced against an unrelated
    # service: no conflict, and it joins.
    await a.race([_alert(3, "backend", "fp-backend-2")], b, [_alert(4, "grafana", "fp-g")])
    assert a.lost == 1
    assert [e["service"] for e in await _opened(redis)] == ["postgres", "grafana"]


async def test_a_playbook_step_is_requested_once_when_replicas_race(
    redis: Redis, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    await a.triage.on_alerts([_alert(1, "backend", "fp-backend")])
    (first,) = await read_stream(redis, ACTIONS_REQUESTED.key)
    done = ActionCompleted(
        incident_id=first["incident_id"],
        correlation_id=first["incident_id"],
        action_id=first["action_id"],
        action=first["action"],
        target=first["target"],
        playbook=first["playbook"],
        step=first["step"],
        outcome=ActionOutcome.SUCCEEDED,
    )

    async def rival_goes_first() -> None:
        await b.triage.on_action_completed(done)

    a._before_first_commit = rival_goes_first
    await a.triage.on_action_completed(done)
    requested = await read_stream(redis, ACTIONS_REQUESTED.key)
    assert len({e["action_id"] for e in requested}) == len(requested) == 2
    assert a.lost == 1


async def test_an_alert_sent_twice_reaches_the_timeline_whichever_copy_triage_took(
    redis: Redis, replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    # One alert posted to two detectors is two events of one fingerprint. The recorder
    # stores the first on the alerts stream and counts the second; the replica that wins
    # the race may hold the second, and triage's only reaction then names the copy the
    # recorder counted. The incident's timeline must still show the alert (the compose
    # proof's scale-out check failed on this about one run in six).
    a, b = replicas
    opener = _alert(1, "backend", "fp-1")
    await a.triage.on_alerts([opener])  # the incident the alert joins
    first, second = _alert(2, "backend", "fp-2"), _alert(3, "backend", "fp-2")
    await a.race([first], b, [second])  # B, holding the second copy, commits first
    assert (a.lost, b.lost) == (1, 0)
    reactions = [
        parse_event(e, (SeverityAssigned, AlertCorrelated))
        for stream in (SEVERITY.key, INCIDENTS.key)
        for e in await read_stream(redis, stream)
    ]
    (joined,) = [r for r in reactions if isinstance(r, AlertCorrelated)]
    assert joined.causation_id == second.event_id  # a reaction to the second copy only
    store = TimelineStore(f"sqlite+aiosqlite:///{tmp_path / 'timeline.db'}")
    await migrate(store.engine)
    try:
        for batch in ([opener, first, second], reactions):  # the alerts stream, then triage's
            await store.record_many(list(batch))
        timeline = [t.row for t in await Reader(store.sessions).timeline(joined.incident_id)]
        raw = [r.event_id for r in timeline if r.event_type == "AlertRaised"]
        assert raw == [opener.event_id, first.event_id]
    finally:
        await store.close()
