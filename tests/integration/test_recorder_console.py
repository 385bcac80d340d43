"""What the operator console needs from the recorder's API (issue 15), on SQLite and
PostgreSQL, fed through real Redis streams: pending approvals with what will run, refusing
an action, `by` on every command, the incident's response countdown and escalation state,
its path through the runbook's phases, and the postmortem as HTML for a browser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from services.escalator.main import build as build_escalator
from services.recorder.main import build as build_recorder
from shared.events import (
    ActionCompleted,
    ActionOutcome,
    ActionRequested,
    EscalationDue,
    EscalationTrigger,
    Event,
    NoteAdded,
    Severity,
    utcnow,
)
from shared.settings import Settings
from shared.streams import INCIDENTS
from tests.helpers import eventually, read_stream, recorded, running
from tests.recorder_events import T0, alert, assigned, at, new_id

pytestmark = pytest.mark.integration


def _prune(incident: str, **extra: object) -> ActionRequested:
    return ActionRequested(
        incident_id=incident,
        correlation_id=incident,
        action="docker.system_prune",
        params={"label": "jarvis.tmp=1"},
        dangerous=True,
        producer="triage",
        requested_by="playbook:high_resource_usage",
        playbook="high_resource_usage",
        step=6,
        occurred_at=at(2),
        **extra,  # type: ignore[arg-type]
    )


def _awaiting(request: ActionRequested) -> ActionCompleted:
    return ActionCompleted(
        **request.follow(producer="remediator"),
        occurred_at=at(2.1),
        action_id=request.action_id,
        action=request.action,
        target=request.target,
        outcome=ActionOutcome.AWAITING_APPROVAL,
        detail="docker.system_prune is dangerous: waiting for approval",
        playbook=request.playbook,
        step=request.step,
    )


async def test_pending_approvals_list_what_will_run_until_answered(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url, remediator={"approval_timeout_s": 900})
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert("ollama")
        request = _prune(incident)
        await recorded(runtime, client, cause, assigned(cause, incident, "P1"), request)
        assert (await client.get("/api/v1/approvals")).json() == []  # requested, not waiting

        await recorded(runtime, client, _awaiting(request))
        (pending,) = (await client.get("/api/v1/approvals")).json()
        assert pending["action_id"] == request.action_id
        assert pending["incident_id"] == incident
        assert pending["incident_title"] == "ollama unresponsive"
        assert pending["severity"] == "P1"
        assert pending["action"] == "docker.system_prune"
        assert pending["params"] == {"label": "jarvis.tmp=1"}
        assert pending["requested_by"] == "playbook:high_resource_usage"
        # Exactly what will run, in the runbook's words.
        assert pending["command"] == "docker system prune -f --filter label=jarvis.tmp=1"
        assert pending["waiting_since"].startswith(at(2.1).isoformat()[:19])
        assert pending["expires_at"].startswith((at(2.1) + timedelta(seconds=900)).isoformat()[:19])

        done = ActionCompleted(
            **request.follow(producer="remediator"),
            action_id=request.action_id,
            action=request.action,
            outcome=ActionOutcome.SUCCEEDED,
            detail="approved by alice: system prune: 0 containers",
        )
        await recorded(runtime, client, done)
        assert (await client.get("/api/v1/approvals")).json() == []


async def test_refusing_an_action_names_who_what_and_why(
    database_url: str, make_settings: Callable[..., Settings], redis: Redis
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert("ollama")
        request = _prune(incident)
        opening = assigned(cause, incident)
        await recorded(runtime, client, cause, opening, request, _awaiting(request))
        path = f"/api/v1/actions/{request.action_id}/refuse"

        wrong = await client.post(path, json={"by": "alice", "action": "redis.flushdb"})
        assert wrong.status_code == 409
        assert "docker.system_prune" in wrong.json()["detail"]
        missing = await client.post(path, json={"by": "alice"})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "action"]
        unknown = await client.post(
            f"/api/v1/actions/{new_id()}/refuse", json={"by": "a", "action": "docker.system_prune"}
        )
        assert unknown.status_code == 404

        answer = await client.post(
            path, json={"by": "alice", "action": "docker.system_prune", "reason": "not now"}
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["event_type"] == "ActionRefused"
        assert answer.json()["stream"] == INCIDENTS.key
        on_stream = {e["event_id"]: e for e in await read_stream(redis, INCIDENTS.key)}
        refusal = on_stream[answer.json()["event_id"]]
        assert (refusal["by"], refusal["reason"], refusal["action_id"]) == (
            "alice",
            "not now",
            request.action_id,
        )
        assert refusal["causation_id"] == request.event_id
        timeline = (await client.get(f"/api/v1/incidents/{incident}/timeline")).json()
        assert answer.json()["event_id"] in {e["event_id"] for e in timeline}
        (pending,) = (await client.get("/api/v1/approvals")).json()
        assert pending["refused_by"] == "alice"  # until the remediator answers


async def test_every_command_takes_by_and_notes_still_take_author(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert()
        request = _prune(incident)
        await recorded(runtime, client, cause, assigned(cause, incident), request)
        notes = f"/api/v1/incidents/{incident}/notes"
        by = await client.post(notes, json={"by": "carol", "text": "pool full"})
        author = await client.post(notes, json={"author": "dave", "text": "still full"})
        both = await client.post(notes, json={"by": "carol", "author": "dave", "text": "x"})
        assert (by.status_code, author.status_code, both.status_code) == (202, 202, 422)
        approve = f"/api/v1/actions/{request.action_id}/approve"
        mismatch = await client.post(approve, json={"by": "erin", "action": "redis.flushdb"})
        assert mismatch.status_code == 409
        approved = await client.post(approve, json={"by": "erin", "action": "docker.system_prune"})
        assert approved.status_code == 202
        timeline = (await client.get(f"/api/v1/incidents/{incident}/timeline")).json()
        written = {e["event"].get("text"): e["event"].get("author") for e in timeline}
        assert written["pool full"] == "carol"
        assert written["still full"] == "dave"
        (approval,) = [e for e in timeline if e["event_type"] == "ActionApproved"]
        assert approval["event"]["approver"] == "erin"


async def test_incidents_carry_the_response_countdown_and_escalation_state(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder, build_escalator]) as (client, runtime):
        incident, opened = new_id(), utcnow() - timedelta(minutes=20)
        cause = alert("backend")
        opening = assigned(cause, incident, "P1").model_copy(
            update={
                "opened_at": opened,
                "response_due_at": opened + timedelta(hours=1),
                "occurred_at": opened,
            }
        )
        await recorded(runtime, client, cause, opening)

        async def escalated() -> dict[str, object] | None:
            body = (await client.get(f"/api/v1/incidents/{incident}")).json()
            return body if body["escalation_level"] == 1 and body["next_escalation"] else None

        # P1 after 15 min: level 1 at once (overdue); level 2 at 1 h.
        body = await eventually(escalated)
        assert body["response_due_at"].startswith((opened + timedelta(hours=1)).isoformat()[:19])
        assert body["next_escalation"]["level"] == 2
        due = (opened + timedelta(hours=1)).isoformat()[:19]
        assert body["next_escalation"]["due_at"].startswith(due)
        (listed,) = [
            i for i in (await client.get("/api/v1/incidents")).json() if i["id"] == incident
        ]
        assert listed["escalation_level"] == 1
        assert listed["next_escalation"]["level"] == 2

        # A rise to P0 shortens the response time to 15 min from the opening.
        rise = assigned(cause, incident, "P0", previous="P1").model_copy(
            update={
                "opened_at": opened,
                "response_due_at": opened + timedelta(minutes=15),
                "occurred_at": utcnow(),
            }
        )
        await recorded(runtime, client, rise)
        body = (await client.get(f"/api/v1/incidents/{incident}")).json()
        assert body["severity"] == "P0"
        assert body["response_due_at"].startswith((opened + timedelta(minutes=15)).isoformat()[:19])

        await client.post(f"/api/v1/incidents/{incident}/resolve", json={"by": "alice"})

        async def calm() -> bool:
            body = (await client.get(f"/api/v1/incidents/{incident}")).json()
            return body["next_escalation"] is None

        await eventually(calm)


async def test_the_phase_bar_shows_the_incident_path_through_the_runbook(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert("backend")

        def done(action: str, minute: float, outcome: str = "succeeded") -> list[Event]:
            request = ActionRequested(
                incident_id=incident, action=action, producer="triage", occurred_at=at(minute)
            )
            return [
                request,
                ActionCompleted(
                    **request.follow(producer="remediator"),
                    occurred_at=at(minute + 0.5),
                    action_id=request.action_id,
                    action=action,
                    outcome=ActionOutcome(outcome),
                ),
            ]

        events: list[Event] = [cause, assigned(cause, incident)]
        events += done("diagnostics.collect", 1)
        events += done("postgres.backup", 3)
        events += done("docker.restart", 5, "failed")
        events += done("docker.restart", 7)
        events += done("verify.all", 9)
        await recorded(runtime, client, *events)
        phases = (await client.get(f"/api/v1/incidents/{incident}")).json()["phases"]
        assert [p["phase"] for p in phases] == [
            "detected",
            "triaged",
            "contained",
            "fixed",
            "verified",
            "resolved",
        ]
        reached = [p["at"][:19] if p["at"] else None for p in phases]
        assert (
            reached
            == [
                T0.isoformat()[:19],
                at(0.5).isoformat()[:19],
                at(3.5).isoformat()[:19],
                at(7.5).isoformat()[:19],  # the failed restart fixed nothing
                at(9.5).isoformat()[:19],
                None,
            ]
        )


async def test_the_postmortem_is_html_for_a_browser_with_event_text_escaped(
    database_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(database_url=database_url)
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert("backend").model_copy(
            update={"summary": "<script>alert(1)</script> & [x](javascript:alert(2))"}
        )
        hostile = "<img src=x onerror=alert(3)> **bold** | pipe"
        note = NoteAdded(incident_id=incident, author="<b>mallory</b>", text=hostile)
        await recorded(runtime, client, cause, assigned(cause, incident), note)
        path = f"/api/v1/incidents/{incident}/postmortem"

        page = await client.get(path, headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert html.startswith("<!doctype html>")
        assert f"<h1>Post-Incident Review: {incident}</h1>" in html
        assert "<table>" in html
        for raw in ("<script>", "<img", "<b>mallory", "<a ", "href="):
            assert raw not in html, raw
        assert "&lt;img src=x onerror=alert(3)&gt;" in html
        assert "&lt;b&gt;mallory&lt;/b&gt;" in html

        markdown = await client.get(path)
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert markdown.text.startswith(f"# Post-Incident Review: {incident}")
        explicit = await client.get(path, headers={"Accept": "text/markdown"})
        assert explicit.headers["content-type"].startswith("text/markdown")


def test_escalation_due_event_is_what_the_projection_counts() -> None:
    # A guard for the projection test above: the escalator's event carries the level.
    due = EscalationDue(
        incident_id=new_id(),
        level=2,
        severity=Severity.P1,
        trigger=EscalationTrigger.TIME,
        reason="P1 open for 1:00:00",
        step="time:3600s:L2",
    )
    assert due.level == 2
