"""Playbooks as data: the shipped file, choosing one, and the run's state machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.triage.playbooks import (
    Phase,
    PlaybookError,
    Run,
    RunStatus,
    action_id,
    advance,
    load_playbooks,
    may_switch,
    request_for,
    start,
)
from shared.actions import ActionName
from shared.events import ActionOutcome
from shared.settings import TriageSettings

PLAYBOOKS = load_playbooks()
CONTAINERS = TriageSettings().containers
SCENARIOS = (
    "backend_api_unresponsive",
    "database_connection_failures",
    "model_inference_failures",
    "high_resource_usage",
)


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_runbook_scenario_diagnoses_protects_fixes_and_verifies(name: str) -> None:
    spec = PLAYBOOKS.get(name)
    assert spec is not None
    phases = [s.phase for s in spec.steps]
    assert phases[0] is Phase.DIAGNOSTICS
    first_fix = phases.index(Phase.FIX)
    protect = [s.action for s in spec.steps[:first_fix] if s.phase is Phase.PROTECT]
    assert {ActionName.POSTGRES_BACKUP, ActionName.REDIS_BGSAVE} <= set(protect)
    verify = phases.index(Phase.VERIFY)
    assert spec.steps[verify].action is ActionName.VERIFY
    assert all(p is Phase.FOLLOWUP for p in phases[verify + 1 :])


def test_database_playbook_is_the_runbooks_ordered_restart() -> None:
    spec = PLAYBOOKS.get("database_connection_failures")
    assert spec is not None
    actions = [s.action for s in spec.steps]
    assert actions.index(ActionName.RECOVERY_ORDERED_RESTART) < actions.index(ActionName.VERIFY)
    run = Run(
        "inc",
        spec.name,
        "postgres",
        actions.index(ActionName.RECOVERY_ORDERED_RESTART),
        RunStatus.RUNNING,
    )
    request = request_for(run, spec, CONTAINERS)
    assert request.params == {"backend": "backend", "database": "sutazai-postgres"}
    assert request.target == "sutazai-postgres"


def test_dangerous_actions_are_marked_even_if_the_file_forgets() -> None:
    spec = PLAYBOOKS.get("high_resource_usage")
    assert spec is not None
    prune = next(s for s in spec.steps if s.action is ActionName.DOCKER_SYSTEM_PRUNE)
    assert prune.dangerous


@pytest.mark.parametrize(
    ("service", "text", "expected"),
    [
        ("backend", "health check failed", "backend_api_unresponsive"),
        ("postgres", "", "database_connection_failures"),
        ("ollama", "No models available", "model_inference_failures"),
        ("ollama", "container memory above 80%", "high_resource_usage"),
        ("neo4j", "High CPU", "high_resource_usage"),
        ("grafana", "dashboard broken", "diagnostics_only"),
    ],
)
def test_selection(service: str, text: str, expected: str) -> None:
    assert PLAYBOOKS.select(service, text).name == expected


def test_unknown_scenario_gets_diagnostics_only_on_its_own_container() -> None:
    spec = PLAYBOOKS.select("sutazai-grafana-thing", "odd")
    assert [s.action for s in spec.steps] == [ActionName.DIAGNOSTICS_COLLECT]
    request = request_for(start("inc", spec, "grafana"), spec, CONTAINERS)
    assert request.target == "sutazai-grafana"


def test_success_and_dry_run_skip_continue_then_the_run_completes() -> None:
    spec = PLAYBOOKS.get("backend_api_unresponsive")
    assert spec is not None
    run = start("inc-1", spec, "backend")
    for step in range(len(spec.steps)):
        outcome = ActionOutcome.SUCCEEDED if step % 2 else ActionOutcome.SKIPPED
        result = advance(run, spec, action_id("inc-1", spec.name, step), outcome, True, "")
        assert result is not None
        run = result.run
        assert result.request_next == (step + 1 < len(spec.steps))
    assert run.status is RunStatus.DONE
    assert result.note == "playbook backend_api_unresponsive completed all steps"


@pytest.mark.parametrize(
    ("outcome", "dry_run"),
    [
        (ActionOutcome.FAILED, False),
        (ActionOutcome.REJECTED, False),
        (ActionOutcome.TIMED_OUT, False),
    ],
)
def test_failure_of_a_fix_stops_and_flags(outcome: ActionOutcome, dry_run: bool) -> None:
    spec = PLAYBOOKS.get("backend_api_unresponsive")
    assert spec is not None
    fix = next(i for i, s in enumerate(spec.steps) if s.phase is Phase.FIX)
    run = Run("inc-1", spec.name, "backend", fix, RunStatus.RUNNING)
    result = advance(run, spec, run.current_action_id, outcome, dry_run, "boom")
    assert result is not None
    assert result.run.status is RunStatus.STOPPED
    assert not result.request_next
    assert result.note is not None
    assert "flagged for escalation" in result.note
    assert (
        advance(result.run, spec, run.current_action_id, ActionOutcome.SUCCEEDED, False, "") is None
    )


def test_awaiting_approval_pauses_once_then_resumes() -> None:
    spec = PLAYBOOKS.get("high_resource_usage")
    assert spec is not None
    run = start("inc-1", spec, "ollama")
    paused = advance(run, spec, run.current_action_id, ActionOutcome.AWAITING_APPROVAL, False, "")
    assert paused is not None
    assert paused.run.status is RunStatus.PAUSED
    again = advance(
        paused.run, spec, run.current_action_id, ActionOutcome.AWAITING_APPROVAL, False, ""
    )
    assert again is None
    resumed = advance(paused.run, spec, run.current_action_id, ActionOutcome.SUCCEEDED, False, "")
    assert resumed is not None
    assert (resumed.run.status, resumed.run.step, resumed.request_next) == (
        RunStatus.RUNNING,
        1,
        True,
    )


def test_stale_and_foreign_completions_are_ignored() -> None:
    spec = PLAYBOOKS.get("backend_api_unresponsive")
    assert spec is not None
    run = start("inc-1", spec, "backend")
    assert advance(run, spec, "someone-else", ActionOutcome.SUCCEEDED, False, "") is None
    step1 = advance(run, spec, run.current_action_id, ActionOutcome.SUCCEEDED, False, "")
    assert step1 is not None
    # The redelivered completion of step 0 is not step 1's.
    assert (
        advance(step1.run, spec, run.current_action_id, ActionOutcome.SUCCEEDED, False, "") is None
    )
    assert Run.from_json(step1.run.to_json()) == step1.run


def test_switching_is_allowed_only_while_gathering_evidence() -> None:
    spec = PLAYBOOKS.get("backend_api_unresponsive")
    assert spec is not None
    run = start("inc-1", spec, "backend")
    assert may_switch(run, spec)
    at_protect = Run("inc-1", spec.name, "backend", 3, RunStatus.RUNNING)
    assert spec.steps[3].phase is Phase.PROTECT
    assert not may_switch(at_protect, spec)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("fallback: x\nplaybooks: []\n", "playbooks"),
        (
            "fallback: a\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: fix, action: docker.restart, target: backend}\n",
            "first step must be diagnostics",
        ),
        (
            "fallback: a\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: diagnostics, action: diagnostics.collect}\n"
            "  - {phase: fix, action: docker.restart, target: backend}\n",
            "protect data first",
        ),
        (
            "fallback: a\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: diagnostics, action: diagnostics.collect}\n"
            "  - {phase: protect, action: redis.bgsave, target: redis}\n"
            "  - {phase: fix, action: docker.system_prune}\n"
            "  - {phase: verify, action: verify.all}\n",
            "put them in phase followup",
        ),
        (
            "fallback: a\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: diagnostics, action: diagnostics.collect,"
            " when: {container: postgres, healthy: true}}\n",
            "container needs state",
        ),
        (
            "fallback: a\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: diagnostics, action: docker.nuke}\n",
            "playbooks.0.steps.0.action",
        ),
        (
            "fallback: b\nplaybooks:\n- name: a\n  title: t\n  steps:\n"
            "  - {phase: diagnostics, action: diagnostics.collect}\n",
            "fallback 'b' is not a playbook",
        ),
    ],
)
def test_invalid_playbook_files_are_named(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(body)
    with pytest.raises(PlaybookError, match=message):
        load_playbooks(path)
