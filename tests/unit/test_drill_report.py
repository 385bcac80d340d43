"""The drill report as a pure function of the drill's announcement and its incident's
timeline; and the capped escalation policy of a drill's incident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.escalator.policy import Policy
from services.recorder.drills import SCENARIOS, report
from shared.events import EscalationTrigger, Severity
from shared.settings import EscalatorSettings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
STARTED = {
    "drill_id": "d1",
    "scenario": "memory-pressure",
    "service": "ollama",
    "target": "sutazai-ollama",
    "fault": "sutazai-ollama holds 90 % of its memory limit",
    "injected_at": T0.isoformat(),
    "by": "alice",
}


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _step(
    n: int, phase: str, action: str, asked: float, done: float | None, outcome: str, **extra: Any
) -> list[tuple[str, datetime, dict[str, Any]]]:
    aid = f"a{n}"
    body = {"action_id": aid, "action": action, "playbook": "high_resource_usage", "step": n}
    out = [("ActionRequested", _at(asked), {**body, "phase": phase, "target": "x"})]
    if done is not None:
        out.append(("ActionCompleted", _at(done), {**body, "outcome": outcome, **extra}))
    return out


def test_the_report_times_detection_phases_verification_and_resolution() -> None:
    events = [
        ("AlertRaised", _at(14), {}),
        ("SeverityAssigned", _at(15), {"playbook": "high_resource_usage", "drill_id": "d1"}),
        *_step(0, "diagnostics", "docker.stats", 15, 17, "failed", on_failure="continue"),
        *_step(1, "protect", "postgres.backup", 17, 18, "skipped"),
        *_step(2, "fix", "docker.restart", 18, 24, "succeeded"),
        *_step(3, "verify", "verify.all", 24, 25, "succeeded"),
        *_step(4, "followup", "docker.system_prune", 25, 26, "awaiting_approval"),
    ]
    open_report = report(STARTED, {"id": "inc", "status": "open"}, events)
    assert open_report["status"] == "verified"  # a tolerated failure is no failure
    assert (open_report["detected_s"], open_report["verified_s"]) == (15.0, 25.0)
    phases = {p["phase"]: (p["started_s"], p["finished_s"]) for p in open_report["phases"]}
    assert phases == {
        "diagnostics": (15.0, 17.0),
        "protect": (17.0, 18.0),
        "fix": (18.0, 24.0),
        "verify": (24.0, 25.0),
        "followup": (25.0, None),  # still waiting for an approval
    }
    assert open_report["steps"][4]["outcome"] == "pending"

    events += [
        ("IncidentResolved", _at(40), {"by": "triage", "automatic": True}),
        (
            "ActionCompleted",
            _at(40.1),
            {
                "action_id": "a4",
                "action": "docker.system_prune",
                "outcome": "skipped",
                "detail": "expired: …",
            },
        ),
    ]
    done = report(STARTED, {"id": "inc", "status": "resolved"}, events)
    assert (done["status"], done["resolved_s"], done["resolved_by"]) == ("resolved", 40.0, "triage")
    assert done["steps"][4]["outcome"] == "skipped"


def test_a_failed_fix_is_a_failed_drill_and_no_incident_is_only_injected() -> None:
    events = [
        ("SeverityAssigned", _at(5), {"playbook": "backend_api_unresponsive"}),
        *_step(0, "fix", "docker.restart", 5, 6, "failed"),
    ]
    assert report(STARTED, {"id": "inc", "status": "open"}, events)["status"] == "failed"
    nothing = report(STARTED, None, [])
    assert (nothing["status"], nothing["incident_id"], nothing["steps"]) == ("injected", None, [])


def test_every_scenario_names_its_service_and_fault() -> None:
    assert set(SCENARIOS) == {
        "backend-down",
        "postgres-down",
        "ollama-no-models",
        "ollama-down",
        "memory-pressure",
    }
    assert {s.service for s in SCENARIOS.values()} == {"backend", "postgres", "ollama"}


def test_a_capped_policy_escalates_no_higher_than_its_cap() -> None:
    policy = Policy.from_settings(EscalatorSettings())
    capped = policy.capped(1)
    levels = {lvl for row in capped.matrix.values() for _, lvl in row if lvl is not None}
    assert levels == {1}
    assert policy.matrix[Severity.P0][0] == (900.0, 2)
    assert capped.matrix[Severity.P0][0] == (900.0, None)  # level 2 at 15 min: monitor only
    assert max(capped.trigger_levels.values()) == 1
    assert policy.trigger_levels[EscalationTrigger.DATA_LOSS] > 1  # the real one is untouched
