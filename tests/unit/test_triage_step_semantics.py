"""The shipped playbooks survive the failures they are for (issue 14's five drills, as pure
decisions): what a failed step means, conditions, the SRE's order, approvals after
verification."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.escalator.policy import Policy, remediation_trigger
from services.triage.playbooks import (
    Phase,
    PlaybookSpec,
    RunStatus,
    StepSpec,
    advance,
    load_playbooks,
    request_for,
    start,
)
from shared.actions import ActionName
from shared.events import ActionOutcome
from shared.settings import EscalatorSettings, TriageSettings

PLAYBOOKS = load_playbooks()
CONTAINERS = TriageSettings().containers
Outcome = tuple[ActionOutcome, str]


def _play(
    name: str, service: str, answer: Callable[[StepSpec], Outcome]
) -> tuple[list[tuple[str, str]], RunStatus, list[str]]:
    """Run a shipped playbook to its end with the remediator's answers given by `answer`;
    (action, target) of every step requested, the final status, and triage's notes."""
    spec = PLAYBOOKS.get(name)
    assert spec is not None
    run = start("inc", spec, service)
    requested, notes = [], []
    while True:
        request = request_for(run, spec, CONTAINERS)
        requested.append((request.action, request.target))
        outcome, detail = answer(spec.steps[run.step])
        result = advance(run, spec, run.current_action_id, outcome, False, detail)
        assert result is not None
        run = result.run
        if result.note:
            notes.append(result.note)
        if not result.request_next:
            return requested, run.status, notes


def _ok(_: StepSpec) -> Outcome:
    return ActionOutcome.SUCCEEDED, "ok"


def test_database_down_the_probes_fail_the_backup_is_skipped_and_postgres_is_restarted() -> None:
    """`docker stop sutazai-postgres`: nothing can exec into it. Diagnostics and protection
    note their failure and go on; the ordered restart brings it back; then verification."""

    def answer(step: StepSpec) -> Outcome:
        if step.action is ActionName.POSTGRES_CONNECTIONS:
            return ActionOutcome.FAILED, "container sutazai-postgres is not running"
        if step.action is ActionName.POSTGRES_BACKUP:
            return ActionOutcome.SKIPPED, "skipped: sutazai-postgres is not running"
        return ActionOutcome.SUCCEEDED, "ok"

    requested, status, notes = _play("database_connection_failures", "postgres", answer)
    actions = [a for a, _ in requested]
    assert status is RunStatus.DONE
    assert actions.index("recovery.ordered_restart") < actions.index("verify.all")
    assert any("postgres.connections" in n and "continuing" in n for n in notes)
    assert any("postgres.backup" in n and "skipped" in n for n in notes)


def test_ollama_down_is_restarted_before_the_model_is_pulled() -> None:
    requested, status, _ = _play("model_inference_failures", "ollama", _ok)
    assert status is RunStatus.DONE
    restart = requested.index(("docker.restart", "sutazai-ollama"))
    assert restart < requested.index(("ollama.pull", "sutazai-ollama"))
    assert requested[-1] == ("verify.all", "")


@pytest.mark.parametrize("name", [p.name for p in PLAYBOOKS._order])
def test_no_playbook_waits_for_a_human_before_it_is_verified(name: str) -> None:
    spec = PLAYBOOKS.get(name)
    assert spec is not None
    actions = [s.action for s in spec.steps]
    verified_at = actions.index(ActionName.VERIFY) if ActionName.VERIFY in actions else 0
    assert not [s.action for s in spec.steps[:verified_at] if s.dangerous]


def test_memory_pressure_is_verified_while_the_prune_waits_for_approval() -> None:
    def answer(step: StepSpec) -> Outcome:
        if step.dangerous:
            return ActionOutcome.AWAITING_APPROVAL, "waiting"
        return ActionOutcome.SUCCEEDED, "ok"

    requested, status, _ = _play("high_resource_usage", "ollama", answer)
    actions = [a for a, _ in requested]
    assert status is RunStatus.PAUSED
    assert actions[-1] == "docker.system_prune"
    assert actions.index("docker.update_limits") < actions.index("docker.restart")
    assert actions.index("docker.restart") < actions.index("verify.all")


def test_a_failed_fix_still_stops_the_playbook() -> None:
    def answer(step: StepSpec) -> Outcome:
        if step.phase is Phase.FIX:
            return ActionOutcome.FAILED, "no such container"
        return ActionOutcome.SUCCEEDED, "ok"

    requested, status, notes = _play("backend_api_unresponsive", "backend", answer)
    assert status is RunStatus.STOPPED
    assert requested[-1] == ("docker.restart", "backend")
    assert "flagged for escalation" in notes[-1]


def test_steps_say_what_their_failure_means_by_phase() -> None:
    spec = PLAYBOOKS.get("database_connection_failures")
    assert spec is not None
    by_phase = {s.phase: s.on_failure for s in spec.steps}
    assert by_phase[Phase.DIAGNOSTICS] == "continue"
    assert by_phase[Phase.PROTECT] == "continue"
    assert by_phase[Phase.FIX] == "stop"
    assert by_phase[Phase.VERIFY] == "stop"


def test_the_backup_is_conditional_on_postgres_running() -> None:
    spec = PLAYBOOKS.get("database_connection_failures")
    assert isinstance(spec, PlaybookSpec)
    index = next(i for i, s in enumerate(spec.steps) if s.action is ActionName.POSTGRES_BACKUP)
    run = start("inc", spec, "postgres")
    from dataclasses import replace

    request = request_for(replace(run, step=index), spec, CONTAINERS)
    assert request.when is not None
    assert request.when.model_dump(exclude_none=True) == {
        "container": "sutazai-postgres",
        "state": "running",
    }
    assert request.on_failure == "continue"


def test_a_tolerated_failure_does_not_escalate_but_a_stopping_one_does() -> None:
    policy = Policy.from_settings(EscalatorSettings())
    tolerated = remediation_trigger(
        policy,
        action="postgres.connections",
        outcome=ActionOutcome.FAILED,
        escalate=False,
        on_failure="continue",
    )
    assert tolerated is None
    stopping = remediation_trigger(
        policy, action="docker.restart", outcome=ActionOutcome.FAILED, escalate=False
    )
    assert stopping is not None
