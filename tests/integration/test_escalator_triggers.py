"""Automatic escalation triggers (runbook "Escalation Triggers"): several systems failing,
data loss, a suspected breach, a failed remediation — at once, with the reason, once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from services.escalator.main import build
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import (
    ActionCompleted,
    ActionOutcome,
    AlertRaised,
    IncidentResolved,
    Severity,
)
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.integration._escalator_support import escalations_of, severity_event

pytestmark = pytest.mark.integration

QUIET_S = 0.4


def _incident() -> str:
    return f"inc-{uuid.uuid4().hex[:12]}"


def _completed(incident: str, outcome: ActionOutcome, escalate: bool = False) -> ActionCompleted:
    return ActionCompleted(
        incident_id=incident,
        correlation_id=incident,
        producer="remediator",
        action_id=str(uuid.uuid4()),
        action="docker.restart",
        target="backend",
        outcome=outcome,
        detail="container exited with 137",
        escalate=escalate,
    )


async def _triggers(redis: Redis, incident: str) -> list[tuple[str, int]]:
    return [(e["trigger"], e["level"]) for e in await escalations_of(redis, incident)]


async def _settle(redis: Redis, incident: str, expected: list[tuple[str, int]]) -> None:
    async def check() -> bool:
        return await _triggers(redis, incident) == expected

    await eventually(check)
    await asyncio.sleep(QUIET_S)
    assert await _triggers(redis, incident) == expected


async def test_data_loss_security_and_several_systems_escalate_at_once_and_once_only(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident = _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        opened = severity_event(
            incident,
            Severity.P1,
            clock.now(),
            services=["backend", "postgres"],
            data_loss=True,
            security=True,
        )
        await bus.publish(opened)
        expected = [("multiple_systems", 2), ("data_loss", 3), ("security", 3)]
        await _settle(redis, incident, expected)
        events = await escalations_of(redis, incident)
        assert "2 systems failing at once: backend, postgres" in events[0]["reason"]
        assert "data loss detected" in events[1]["reason"]
        assert "security breach suspected" in events[2]["reason"]
        assert all(e["causation_id"] == opened.event_id for e in events)
        assert all(e["elapsed_s"] == 0 for e in events)

        # Redelivery and repeated facts do not escalate again.
        await bus.publish(opened)
        await bus.publish(
            severity_event(incident, Severity.P1, clock.now(), data_loss=True, security=True)
        )
        await _settle(redis, incident, expected)


async def test_several_systems_accumulate_across_severity_events(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident = _incident()
    settings = make_settings(escalator={"multiple_systems_threshold": 3})
    async with running(settings, [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P2, clock.now(), service="backend"))
        await bus.publish(severity_event(incident, Severity.P2, clock.now(), services=["ollama"]))
        await _settle(redis, incident, [])
        await bus.publish(severity_event(incident, Severity.P1, clock.now(), services=["postgres"]))
        await _settle(redis, incident, [("multiple_systems", 2)])


async def test_failed_remediation_escalates_once_per_incident(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    failed, timed_out, rejected, fine = _incident(), _incident(), _incident(), _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        for incident in (failed, timed_out, rejected, fine):
            await bus.publish(severity_event(incident, Severity.P2, clock.now()))
        await bus.publish(_completed(failed, ActionOutcome.FAILED))
        await bus.publish(_completed(failed, ActionOutcome.FAILED))  # a second failure
        await bus.publish(_completed(timed_out, ActionOutcome.TIMED_OUT))
        await bus.publish(_completed(rejected, ActionOutcome.REJECTED))  # no flag: no
        await bus.publish(_completed(fine, ActionOutcome.SUCCEEDED))
        await bus.publish(_completed(fine, ActionOutcome.SKIPPED))
        await _settle(redis, failed, [("remediation_failed", 2)])
        await _settle(redis, timed_out, [("remediation_failed", 2)])
        await _settle(redis, rejected, [])
        await _settle(redis, fine, [])
        reason = (await escalations_of(redis, failed))[0]["reason"]
        assert "docker.restart failed" in reason
        assert "exited with 137" in reason

        # The remediator's own verdict (attempt limit reached) escalates whatever the outcome.
        await bus.publish(_completed(rejected, ActionOutcome.REJECTED, escalate=True))
        await _settle(redis, rejected, [("remediation_failed", 2)])
        assert "asks to escalate" in (await escalations_of(redis, rejected))[0]["reason"]


async def test_trigger_before_the_incident_is_known_waits_for_its_severity(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident, resolved = _incident(), _incident()
    async with running(make_settings(), [build], clock=clock) as (_, runtime):
        bus = EventBus(redis, producer="test")
        await bus.publish(_completed(incident, ActionOutcome.FAILED))
        # Only an alert the detector stamped (sealed) may name its incident: a sender's
        # incident_id is dropped (issue 18).
        await runtime.bus("detector").publish(
            AlertRaised(service="postgres", incident_id=incident, data_loss=True, summary="WAL")
        )
        await eventually(
            lambda: redis.hexists(
                f"jarvis:escalator:incident:{incident}", "pending:trigger:data_loss"
            )
        )
        await eventually(
            lambda: redis.hexists(
                f"jarvis:escalator:incident:{incident}", "pending:trigger:remediation_failed"
            )
        )
        await _settle(redis, incident, [])
        await bus.publish(severity_event(incident, Severity.P0, clock.now()))
        # Both waited; they fire lowest level first when the severity comes.
        await _settle(redis, incident, [("remediation_failed", 2), ("data_loss", 3)])

        # Resolved incidents never escalate, whatever arrives later.
        await bus.publish(severity_event(resolved, Severity.P0, clock.now()))
        await bus.publish(IncidentResolved(incident_id=resolved))
        await eventually(lambda: redis.hexists(f"jarvis:escalator:incident:{resolved}", "resolved"))
        await bus.publish(_completed(resolved, ActionOutcome.FAILED))
        await bus.publish(AlertRaised(service="redis", incident_id=resolved, security=True))
        await _settle(redis, resolved, [])


async def test_trigger_never_lowers_the_level_already_reached(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident = _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P0, clock.now(), security=True))
        await _settle(redis, incident, [("security", 3)])
        await bus.publish(_completed(incident, ActionOutcome.FAILED))  # configured level 2
        await _settle(redis, incident, [("security", 3), ("remediation_failed", 3)])
