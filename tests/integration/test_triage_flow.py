"""Triage through real Redis: the runbook's scenarios end to end, the matrix, grouping,
the quiet period and playbook control, each driven by real events on real streams."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.remediator import main as remediator
from services.triage import main as triage
from services.triage.playbooks import action_id, load_playbooks
from services.triage.store import Keys
from shared.clock import ManualClock
from shared.events import (
    ActionCompleted,
    ActionOutcome,
    AlertRaised,
    AlertStatus,
    IncidentResolved,
)
from shared.settings import Settings
from shared.streams import ACTIONS_COMPLETED, ACTIONS_REQUESTED, ALERTS, INCIDENTS, SEVERITY
from tests.helpers import eventually, read_stream, running, settled

pytestmark = pytest.mark.integration

PLAYBOOKS = load_playbooks()


async def _send(redis: Redis, *alerts: AlertRaised) -> None:
    pipe = redis.pipeline(transaction=False)
    for alert in alerts:
        pipe.xadd(ALERTS.key, {"__data__": alert.to_json()})
    await pipe.execute()


async def _events(redis: Redis, key: str, event_type: str | None = None) -> list[dict[str, Any]]:
    return [e for e in await read_stream(redis, key) if event_type in (None, e.get("event_type"))]


async def _count(redis: Redis, key: str, n: int, event_type: str | None = None) -> Any:
    events = await _events(redis, key, event_type)
    return events if len(events) >= n else None


async def _run(redis: Redis, incident_id: str) -> dict[str, Any] | None:
    raw = await redis.get(Keys.run(incident_id))
    return json.loads(raw) if raw else None


async def _settled(redis: Redis, group: str, key: str) -> bool:
    """Every entry of `key` delivered to `group` and acknowledged."""
    return await settled(redis, key, group)


SCENARIOS = [
    (
        AlertRaised(service="backend", check="health", summary="backend health: unreachable"),
        "backend_api_unresponsive",
        "backend",
    ),
    (
        AlertRaised(service="sutazai-postgres", check="ready", summary="pg_isready fails"),
        "database_connection_failures",
        "postgres",
    ),
    (
        AlertRaised(service="ollama", check="models", summary="No models available"),
        "model_inference_failures",
        "ollama",
    ),
    (
        AlertRaised(service="sutazai-neo4j", check="stats", summary="memory usage at 93%"),
        "high_resource_usage",
        "neo4j",
    ),
    (
        AlertRaised(service="mystery-box", check="ping", summary="something odd"),
        "diagnostics_only",
        "mystery-box",
    ),
]


@pytest.mark.parametrize(("alert", "playbook", "root"), SCENARIOS, ids=[s[1] for s in SCENARIOS])
async def test_scenario_runs_its_playbook_to_the_end_with_the_dry_run_remediator(
    redis: Redis,
    make_settings: Callable[..., Settings],
    alert: AlertRaised,
    playbook: str,
    root: str,
) -> None:
    spec = PLAYBOOKS.get(playbook)
    assert spec is not None
    async with running(make_settings(), [triage.build, remediator.build]):
        await _send(redis, alert)
        notes = await eventually(lambda: _count(redis, INCIDENTS.key, 1, "NoteAdded"))
    (assigned,) = await _events(redis, SEVERITY.key)
    assert assigned["playbook"] == playbook
    assert assigned["root_cause"] == root
    assert assigned["previous_severity"] is None
    incident_id = assigned["incident_id"]
    requested = await _events(redis, ACTIONS_REQUESTED.key)
    assert [r["action"] for r in requested] == [s.action.value for s in spec.steps]
    assert [r["step"] for r in requested] == list(range(len(spec.steps)))
    assert [r["action_id"] for r in requested] == [
        action_id(incident_id, playbook, i) for i in range(len(spec.steps))
    ]
    assert all(r["incident_id"] == incident_id for r in requested)
    completed = await _events(redis, ACTIONS_COMPLETED.key)
    assert [c["action_id"] for c in completed] == [r["action_id"] for r in requested]
    assert "completed all steps" in notes[0]["text"]
    run = await _run(redis, incident_id)
    assert run is not None
    assert run["status"] == "done"
    if playbook == "database_connection_failures":
        ordered = next(r for r in requested if r["action"] == "recovery.ordered_restart")
        assert ordered["params"] == {"backend": "backend", "database": "sutazai-postgres"}
        backup = requested.index(next(r for r in requested if r["action"] == "postgres.backup"))
        assert backup < requested.index(ordered)
    if playbook == "high_resource_usage":
        prune = next(r for r in requested if r["action"] == "docker.system_prune")
        assert prune["dangerous"] is True
        limits = next(r for r in requested if r["action"] == "docker.update_limits")
        assert (limits["target"], limits["params"]) == (
            "sutazai-ollama",
            {"memory": "2g", "cpus": 1.0},
        )
        restart = next(r for r in requested if r["action"] == "docker.restart")
        assert restart["target"] == "sutazai-neo4j"


H, M, L = "high", "medium", "low"
MATRIX = [
    (H, L, "P1"),
    (H, M, "P0"),
    (H, H, "P0"),
    (M, L, "P2"),
    (M, M, "P1"),
    (M, H, "P0"),
    (L, L, "P3"),
    (L, M, "P2"),
    (L, H, "P1"),
]


async def test_every_matrix_cell_through_real_events(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    alerts = [
        AlertRaised(service=f"cell-{impact}-{urgency}", impact=impact, urgency=urgency)
        for impact, urgency, _ in MATRIX
    ]
    settings = make_settings(triage={"playbooks_enabled": False})
    async with running(settings, [triage.build]):
        await _send(redis, *alerts)
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, len(MATRIX)))
    by_service = {a["service"]: a for a in assigned}
    assert len(by_service) == len(MATRIX)
    for impact, urgency, expected in MATRIX:
        event = by_service[f"cell-{impact}-{urgency}"]
        assert (event["impact"], event["urgency"], event["severity"]) == (impact, urgency, expected)
        assert event["reason"] == "impact and urgency from the alert"


async def test_rules_sender_severity_and_unclassified_through_real_events(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    alerts = {
        "outage": AlertRaised(service="edge", summary="Complete outage of the system"),
        "corruption": AlertRaised(service="store", summary="database corruption detected"),
        "agent": AlertRaised(service="agents", summary="single agent failure: planner"),
        "pagerduty": AlertRaised(service="pd", source="pagerduty", external_severity="error"),
        "grafana": AlertRaised(service="gf", source="grafana", external_severity="alerting"),
        "unclassified": AlertRaised(service="mystery"),
    }
    async with running(make_settings(triage={"playbooks_enabled": False}), [triage.build]):
        await _send(redis, *alerts.values())
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, len(alerts)))
    got = {a["service"]: (a["severity"], a["reason"]) for a in assigned}
    assert got == {
        "edge": ("P0", "rule 'complete outage'"),
        "store": ("P0", "rule 'database corruption'"),
        "agents": ("P2", "rule 'single agent failure'"),
        "pd": ("P1", "sender severity 'error'"),
        "gf": ("P1", "sender severity 'alerting'"),
        "mystery": ("P1", "unclassified"),  # defaults medium × medium
    }


async def test_dependency_failure_groups_into_one_incident_with_the_root_cause(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    backend = AlertRaised(
        service="backend", check="health", summary="backend reports degraded", impact=M, urgency=L
    )
    postgres = AlertRaised(service="sutazai-postgres", check="ready", impact=H, urgency=L)
    async with running(make_settings(), [triage.build]):
        await _send(redis, backend)
        await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 1))
        await _send(redis, postgres)
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, 2))
        requested = await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 2))
    opened, raised = assigned
    assert opened["incident_id"] == raised["incident_id"]
    assert (opened["severity"], opened["root_cause"]) == ("P2", "backend")
    assert (raised["severity"], raised["previous_severity"]) == ("P1", "P2")
    assert raised["root_cause"] == "postgres"
    assert raised["services"] == ["backend", "postgres"]
    # The backend playbook had only gathered evidence: the database playbook replaces it.
    assert [r["playbook"] for r in requested] == [
        "backend_api_unresponsive",
        "database_connection_failures",
    ]
    notes = await _events(redis, INCIDENTS.key, "NoteAdded")
    assert any("replaced by database_connection_failures" in n["text"] for n in notes)
    correlated = await _events(redis, INCIDENTS.key, "AlertCorrelated")
    assert "backend depends on postgres" in correlated[0]["reason"]
    assert "probable root cause: postgres" in correlated[0]["reason"]


async def test_severity_rises_with_several_failing_systems_and_never_falls(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(triage={"playbooks_enabled": False})
    first = AlertRaised(service="sutazai-postgres", check="ready", impact=M, urgency=L)
    async with running(settings, [triage.build]):
        await _send(redis, first)
        await eventually(lambda: _count(redis, SEVERITY.key, 1))
        await _send(
            redis,
            AlertRaised(service="backend", check="health", impact=M, urgency=L),
            AlertRaised(service="ollama", check="models", impact=M, urgency=L),
        )
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, 3))
        # A milder repeat and a recovery never lower the severity.
        await _send(
            redis,
            AlertRaised(fingerprint=first.fingerprint, service="postgres", impact=L, urgency=L),
            AlertRaised(
                fingerprint=first.fingerprint, service="postgres", status=AlertStatus.RESOLVED
            ),
        )
        await eventually(lambda: _count(redis, INCIDENTS.key, 3, "AlertCorrelated"))
        await eventually(lambda: _settled(redis, "triage", ALERTS.key))
    assert [a["severity"] for a in await _events(redis, SEVERITY.key)] == ["P2", "P2", "P1"]
    third = assigned[2]
    assert third["previous_severity"] == "P2"
    assert third["reason"] == "raised: 3 systems failing at once (backend, ollama, postgres)"
    assert len(third["services"]) == 3
    assert len({a["incident_id"] for a in assigned}) == 1


async def test_quiet_period_reopens_on_refire_and_then_resolves(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    settings = make_settings(
        triage={"playbooks_enabled": False, "quiet_period_s": 60, "resolve_check_s": 0.05}
    )
    alert = AlertRaised(service="redis", check="ping", impact=M, urgency=M)

    def again(status: AlertStatus) -> AlertRaised:
        return AlertRaised(service="redis", check="ping", status=status, impact=M, urgency=M)

    async with running(settings, [triage.build], clock=clock):
        await _send(redis, alert)
        (opened,) = await eventually(lambda: _count(redis, SEVERITY.key, 1))
        incident_id = opened["incident_id"]
        await _send(redis, again(AlertStatus.RESOLVED))
        await eventually(lambda: _count(redis, INCIDENTS.key, 1, "AlertCorrelated"))
        clock.advance(59)
        await _send(redis, again(AlertStatus.FIRING))  # re-fire within the quiet period
        correlated = await eventually(lambda: _count(redis, INCIDENTS.key, 2, "AlertCorrelated"))
        assert correlated[1]["incident_id"] == incident_id
        assert "reopened within the quiet period" in correlated[1]["reason"]
        clock.advance(120)  # still firing: no quiet period is running
        await _send(redis, again(AlertStatus.RESOLVED))
        await eventually(lambda: _count(redis, INCIDENTS.key, 3, "AlertCorrelated"))
        assert await _events(redis, INCIDENTS.key, "IncidentResolved") == []
        clock.advance(61)
        (resolved,) = await eventually(lambda: _count(redis, INCIDENTS.key, 1, "IncidentResolved"))
        # After the resolution the same fingerprint opens a new incident.
        await _send(redis, again(AlertStatus.FIRING))
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, 2))
    assert resolved["incident_id"] == incident_id
    assert resolved["automatic"] is True
    assert resolved["producer"] == "triage"
    assert assigned[1]["incident_id"] != incident_id
    assert len(await _events(redis, INCIDENTS.key, "IncidentResolved")) == 1


async def test_operator_resolution_frees_the_fingerprint(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    alert = AlertRaised(service="grafana", check="ui", summary="UI glitch on a dashboard")
    settings = make_settings(triage={"playbooks_enabled": False})
    async with running(settings, [triage.build]) as (client, _):
        await _send(redis, alert)
        (opened,) = await eventually(lambda: _count(redis, SEVERITY.key, 1))
        assert opened["severity"] == "P3"
        health = (await client.get("/health")).json()
        assert health["services"]["triage"] == {"status": "ok", "open_incidents": 1}
        resolved = IncidentResolved(incident_id=opened["incident_id"], by="alice")
        await redis.xadd(INCIDENTS.key, {"__data__": resolved.to_json()})
        await eventually(lambda: _settled(redis, "triage", INCIDENTS.key))
        health = (await client.get("/health")).json()
        assert health["services"]["triage"]["open_incidents"] == 0
        await _send(redis, AlertRaised(service="grafana", check="ui", summary="UI glitch"))
        assigned = await eventually(lambda: _count(redis, SEVERITY.key, 2))
    assert assigned[1]["incident_id"] != opened["incident_id"]
    assert not await redis.sismember(Keys.OPEN, opened["incident_id"])


async def test_failure_stops_the_playbook_and_approval_pauses_it(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with running(make_settings(), [triage.build]):
        await _send(redis, AlertRaised(service="backend", check="health", summary="down"))
        (first,) = await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 1))
        incident_id = first["incident_id"]

        async def complete(step: int, outcome: ActionOutcome, **extra: Any) -> None:
            done = ActionCompleted(
                incident_id=incident_id,
                action_id=action_id(incident_id, "backend_api_unresponsive", step),
                action="x",
                outcome=outcome,
                playbook="backend_api_unresponsive",
                step=step,
                **extra,
            )
            await redis.xadd(ACTIONS_COMPLETED.key, {"__data__": done.to_json()})

        await complete(0, ActionOutcome.AWAITING_APPROVAL)
        await eventually(lambda: _count(redis, INCIDENTS.key, 1, "NoteAdded"))
        assert (await _run(redis, incident_id) or {})["status"] == "paused"
        await complete(0, ActionOutcome.SUCCEEDED)
        await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 2))
        await complete(0, ActionOutcome.SUCCEEDED)  # a stale duplicate changes nothing
        # A diagnostics step's failure is noted and the playbook goes on ...
        await complete(1, ActionOutcome.FAILED, detail="container backend is not running")
        await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 3))
        for step in (2, 3, 4):
            await complete(step, ActionOutcome.SUCCEEDED)
        await eventually(lambda: _count(redis, ACTIONS_REQUESTED.key, 6))
        # ... a fix's failure stops it.
        await complete(5, ActionOutcome.FAILED, detail="docker: no such container")
        notes = await eventually(lambda: _count(redis, INCIDENTS.key, 3, "NoteAdded"))
        await eventually(lambda: _settled(redis, "triage", ACTIONS_COMPLETED.key))
    assert len(await _events(redis, ACTIONS_REQUESTED.key)) == 6
    assert "continuing (diagnostics step)" in notes[1]["text"]
    assert "flagged for escalation" in notes[2]["text"]
    assert "no such container" in notes[2]["text"]
    run = await _run(redis, incident_id)
    assert run is not None
    assert (run["status"], run["step"]) == ("stopped", 5)


async def test_redelivered_alerts_and_completions_publish_nothing_twice(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    first = AlertRaised(service="ollama", check="models", impact=M, urgency=L)
    joiner = AlertRaised(service="ollama", check="generate", impact=H, urgency=H)
    async with running(make_settings(), [triage.build]):
        # The same entries twice, as a reclaim after a crash would deliver them.
        await _send(redis, first, first, joiner, joiner)
        await eventually(lambda: _settled(redis, "triage", ALERTS.key))
        (request,) = await _events(redis, ACTIONS_REQUESTED.key)
        done = ActionCompleted(
            incident_id=request["incident_id"],
            action_id=request["action_id"],
            action=request["action"],
            outcome=ActionOutcome.SUCCEEDED,
            playbook=request["playbook"],
            step=0,
        )
        for _ in range(2):
            await redis.xadd(ACTIONS_COMPLETED.key, {"__data__": done.to_json()})
        await eventually(lambda: _settled(redis, "triage", ACTIONS_COMPLETED.key))
    assigned = await _events(redis, SEVERITY.key)
    assert [(a["severity"], a["previous_severity"]) for a in assigned] == [
        ("P2", None),
        ("P0", "P2"),
    ]
    assert len(await _events(redis, INCIDENTS.key, "AlertCorrelated")) == 1
    requested = await _events(redis, ACTIONS_REQUESTED.key)
    assert [r["step"] for r in requested] == [0, 1]
