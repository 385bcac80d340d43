"""Playbooks as data (`playbooks.yaml`), validated, and the pure state machine that runs one.

A run requests one step at a time. The step's ActionCompleted decides what follows:
success (or a dry-run skip, since the remediator starts in dry-run) requests the next
step; a step skipped because its `when:` condition did not hold goes on with a note;
`awaiting_approval` pauses until the same action completes again. A failure (failed,
rejected, timed out) means what the step says (`on_failure`): `continue` notes it and goes
on, `stop` stops the run, and the escalator, which reads the same ActionCompleted,
escalates. By default evidence and protection continue (a probe into a stopped container
must not keep the fix from running) and fixes and verification stop. Action ids are
derived from incident, playbook and step, so a redelivery can only name its own step.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.triage.memo import Memo
from shared.actions import DANGEROUS_ACTIONS, ActionName, Condition, OnFailure
from shared.events import ActionOutcome

__all__ = [
    "Advance",
    "Phase",
    "PlaybookError",
    "PlaybookSpec",
    "Playbooks",
    "Run",
    "RunStatus",
    "StepRequest",
    "StepSpec",
    "action_id",
    "advance",
    "load_playbooks",
    "may_switch",
    "request_for",
    "start",
]

_NS = uuid.UUID("3c7e9a51-2d4b-4f6a-8e1c-5b9d0f2a7e63")
_PHASES = ("diagnostics", "protect", "fix", "verify", "followup")
# What a failure means when the step does not say: gathering evidence and protecting data
# are worth a note, not the fix; a failed fix or verification needs people.
_DEFAULT_ON_FAILURE: dict[str, OnFailure] = {
    "diagnostics": "continue",
    "protect": "continue",
    "fix": "stop",
    "verify": "stop",
    "followup": "stop",
}


class PlaybookError(ValueError):
    """The playbook file is not valid; the message names the field."""


class Phase(StrEnum):
    DIAGNOSTICS = "diagnostics"
    PROTECT = "protect"
    FIX = "fix"
    VERIFY = "verify"
    FOLLOWUP = "followup"  # after verification: what waits for a human (approvals)


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: Phase
    action: ActionName
    target: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    dangerous: bool = False
    on_failure: OnFailure | None = None  # None: the phase's default
    when: Condition | None = None

    @model_validator(mode="after")
    def _defaults(self) -> StepSpec:
        if self.action in DANGEROUS_ACTIONS and not self.dangerous:
            object.__setattr__(self, "dangerous", True)
        if self.on_failure is None:
            object.__setattr__(self, "on_failure", _DEFAULT_ON_FAILURE[self.phase.value])
        return self


class PlaybookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    services: list[str] = Field(default_factory=list)
    pattern: str | None = None
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _runbook_order(self) -> PlaybookSpec:
        order = [_PHASES.index(s.phase.value) for s in self.steps]
        if order != sorted(order):
            raise ValueError("steps must go diagnostics → protect → fix → verify")
        if self.steps[0].phase is not Phase.DIAGNOSTICS:
            raise ValueError("the first step must be diagnostics")
        if any(s.phase is Phase.FIX for s in self.steps) and not any(
            s.phase is Phase.PROTECT for s in self.steps
        ):
            raise ValueError("a playbook that fixes must protect data first (protect steps)")
        # A fix is verified without waiting for a human: what needs approval comes after.
        if any(s.dangerous and s.phase is not Phase.FOLLOWUP for s in self.steps):
            raise ValueError("dangerous steps wait for approval: put them in phase followup")
        if any(s.phase is Phase.FOLLOWUP for s in self.steps) and not any(
            s.phase is Phase.VERIFY for s in self.steps
        ):
            raise ValueError("followup steps come after a verify step")
        if self.pattern:
            re.compile(self.pattern)
        return self


class _PlaybookFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fallback: str
    playbooks: list[PlaybookSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> _PlaybookFile:
        names = [p.name for p in self.playbooks]
        if len(names) != len(set(names)):
            raise ValueError("playbook names must be unique")
        if self.fallback not in names:
            raise ValueError(f"fallback {self.fallback!r} is not a playbook")
        return self


class Playbooks:
    """The loaded playbooks and how one is chosen for an incident."""

    def __init__(self, specs: list[PlaybookSpec], fallback: str) -> None:
        self._by_name = {p.name: p for p in specs}
        self._order = specs
        self._patterns = {p.name: re.compile(p.pattern, re.IGNORECASE) for p in specs if p.pattern}
        self.fallback = self._by_name[fallback]

    def get(self, name: str) -> PlaybookSpec | None:
        return self._by_name.get(name)

    def select(self, service: str, text: str) -> PlaybookSpec:
        """By the opening alert's text first (resource exhaustion looks alike everywhere),
        then by the probable root cause; an unknown scenario gets diagnostics only."""
        for spec in self._order:
            pattern = self._patterns.get(spec.name)
            if pattern and pattern.search(text):
                return spec
        for spec in self._order:
            if service in spec.services:
                return spec
        return self.fallback


def load_playbooks(path: Path | None = None) -> Playbooks:
    """The shipped playbooks, or those of `path`. Raises PlaybookError naming the field."""
    where = str(path) if path else "services/triage/playbooks.yaml"
    try:
        text = (
            path.read_text()
            if path
            else resources.files("services.triage").joinpath("playbooks.yaml").read_text()
        )
        data = yaml.safe_load(text)
        parsed = _PlaybookFile.model_validate(data)
    except OSError as exc:
        raise PlaybookError(f"{where}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{where}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise PlaybookError(f"{where}: {problems}") from exc
    return Playbooks(parsed.playbooks, parsed.fallback)


class RunStatus(StrEnum):
    RUNNING = "running"  # waiting for the current step's completion
    PAUSED = "paused"  # the current step awaits an operator's approval
    DONE = "done"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Run:
    """One playbook running for one incident."""

    incident_id: str
    playbook: str
    service: str  # the root cause when it started: what "$service" targets
    step: int
    status: RunStatus
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Run:
        # Read with every alert of its incident; immutable, so kept by its bytes.
        return _RUNS(raw)

    @classmethod
    def _parse(cls, raw: bytes) -> Run:
        data = json.loads(raw)
        data["status"] = RunStatus(data["status"])
        return cls(**data)

    @property
    def current_action_id(self) -> str:
        return action_id(self.incident_id, self.playbook, self.step)


_RUNS: Memo[Run] = Memo(Run._parse)


@dataclass(frozen=True)
class StepRequest:
    step: int
    action_id: str
    action: str
    target: str
    params: dict[str, Any]
    dangerous: bool
    phase: Phase
    on_failure: OnFailure = "stop"
    when: Condition | None = None


@dataclass(frozen=True)
class Advance:
    run: Run
    request_next: bool
    note: str | None


def action_id(incident_id: str, playbook: str, step: int) -> str:
    return str(uuid.uuid5(_NS, f"{incident_id}:{playbook}:{step}"))


def start(incident_id: str, spec: PlaybookSpec, service: str) -> Run:
    return Run(incident_id, spec.name, service, 0, RunStatus.RUNNING)


def request_for(run: Run, spec: PlaybookSpec, containers: dict[str, str]) -> StepRequest:
    """The ActionRequested content of the run's current step, targets resolved."""
    step = spec.steps[run.step]

    def container(name: str) -> str:
        name = run.service if name == "$service" else name
        return containers.get(name, name) if name else ""

    params = {
        k: container(v[1:]) if isinstance(v, str) and v.startswith("@") else v
        for k, v in step.params.items()
    }
    when = step.when
    if when is not None and when.container is not None:
        when = when.model_copy(update={"container": container(when.container)})
    return StepRequest(
        step=run.step,
        action_id=run.current_action_id,
        action=step.action.value,
        target=container(step.target),
        params=params,
        dangerous=step.dangerous,
        phase=step.phase,
        on_failure=step.on_failure or "stop",
        when=when,
    )


def advance(
    run: Run,
    spec: PlaybookSpec,
    completed_action_id: str,
    outcome: ActionOutcome,
    dry_run: bool,
    detail: str,
) -> Advance | None:
    """The run after a completion; None when the completion is not the awaited step's
    (a redelivery, a stale step, an operator's own action) or changes nothing."""
    if run.status not in (RunStatus.RUNNING, RunStatus.PAUSED):
        return None
    if completed_action_id != run.current_action_id:
        return None
    step = spec.steps[run.step]
    label = f"playbook {run.playbook} step {run.step} ({step.action.value})"
    if outcome is ActionOutcome.SUCCEEDED or (outcome is ActionOutcome.SKIPPED and dry_run):
        return _next(run, spec, None)
    if outcome is ActionOutcome.SKIPPED:  # its condition did not hold: nothing to fix here
        return _next(run, spec, f"{label} {detail or 'skipped'}")
    if outcome is ActionOutcome.AWAITING_APPROVAL:
        if run.status is RunStatus.PAUSED:
            return None
        return Advance(
            replace(run, status=RunStatus.PAUSED, detail="awaiting approval"),
            False,
            f"{label} waits for an operator's approval (action {completed_action_id})",
        )
    why = f"{outcome.value}: {detail or 'no detail'}"
    if step.on_failure == "continue":
        return _next(run, spec, f"{label} {why}; continuing ({step.phase.value} step)")
    stopped = replace(run, status=RunStatus.STOPPED, detail=f"step {run.step} {why}")
    return Advance(
        stopped, False, f"{label} {why}; playbook stopped, incident flagged for escalation"
    )


def _next(run: Run, spec: PlaybookSpec, note: str | None) -> Advance:
    """Request the step after the current one, or finish the run after the last."""
    if run.step + 1 >= len(spec.steps):
        done = replace(run, status=RunStatus.DONE, detail="all steps run")
        finished = f"playbook {run.playbook} completed all steps"
        return Advance(done, False, f"{note}; {finished}" if note else finished)
    return Advance(replace(run, step=run.step + 1, status=RunStatus.RUNNING), True, note)


def may_switch(run: Run, spec: PlaybookSpec) -> bool:
    """A run may be replaced by a better-fitting playbook while it only gathered evidence."""
    return run.status is RunStatus.RUNNING and all(
        s.phase is Phase.DIAGNOSTICS for s in spec.steps[: run.step + 1]
    )
