"""The escalation policy (CONTRACT §3, runbook "Escalation Procedures") and the pure
decisions it implies: which time-based steps an incident still has, what an
acknowledgement holds back, and which automatic triggers escalate at once.

A `Policy` is built from `EscalatorSettings` and snapshotted (as JSON) when an incident
opens, so editing the configuration never changes incidents already in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ActionOutcome, EscalationTrigger, Severity
from shared.settings import EscalatorSettings

__all__ = [
    "ESCALATION_MATRIX",
    "EscalationStep",
    "LevelContacts",
    "Policy",
    "Trigger",
    "ack_bounds",
    "immediate_triggers",
    "plan",
    "remediation_trigger",
    "schedule",
]

EXECUTIVE = 5


class LevelContacts(BaseModel):
    """Who one level reaches, and over which channels."""

    model_config = ConfigDict(frozen=True)

    role: str
    contacts: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


class Policy(BaseModel):
    """Everything that decides an incident's escalations; stored with the incident."""

    model_config = ConfigDict(frozen=True)

    matrix: dict[Severity, tuple[tuple[float, int | None], ...]]
    levels: dict[int, LevelContacts]
    ack_extra_levels: int = Field(ge=0, le=4)
    trigger_levels: dict[EscalationTrigger, int]
    multiple_systems_threshold: int = Field(ge=2)
    remediation_outcomes: tuple[ActionOutcome, ...]

    @classmethod
    def from_settings(cls, settings: EscalatorSettings) -> Policy:
        rows = settings.matrix
        return cls(
            matrix={
                severity: tuple((cell.after_s, cell.level) for cell in row)
                for severity, row in (
                    (Severity.P0, rows.p0),
                    (Severity.P1, rows.p1),
                    (Severity.P2, rows.p2),
                    (Severity.P3, rows.p3),
                )
            },
            levels={
                number: LevelContacts(
                    role=level.role or f"level {number}",
                    contacts=tuple(level.contacts or ()),
                    channels=tuple(level.channels or ()),
                )
                for number, level in settings.levels.by_number().items()
            },
            ack_extra_levels=settings.ack_extra_levels,
            trigger_levels={
                EscalationTrigger.MULTIPLE_SYSTEMS: settings.multiple_systems_level,
                EscalationTrigger.DATA_LOSS: settings.data_loss_level,
                EscalationTrigger.SECURITY: settings.security_level,
                EscalationTrigger.REMEDIATION_FAILED: settings.remediation_failed_level,
            },
            multiple_systems_threshold=settings.multiple_systems_threshold,
            remediation_outcomes=tuple(ActionOutcome(o) for o in settings.remediation_outcomes),
        )

    def level(self, number: int) -> LevelContacts:
        return self.levels.get(number) or LevelContacts(role=f"level {number}")

    def capped(self, highest: int) -> Policy:
        """The policy of a drill's incident: nothing escalates above `highest`
        (`drills.max_escalation_level`); time steps above it only monitor."""
        return self.model_copy(
            update={
                "matrix": {
                    severity: tuple(
                        (after, level if level is None or level <= highest else None)
                        for after, level in row
                    )
                    for severity, row in self.matrix.items()
                },
                "trigger_levels": {k: min(v, highest) for k, v in self.trigger_levels.items()},
            }
        )


# The runbook's matrix, as the default configuration produces it (kept for readers and tests).
ESCALATION_MATRIX = Policy.from_settings(EscalatorSettings()).matrix


@dataclass(frozen=True)
class EscalationStep:
    """One time-based escalation: at `due_at`, escalate to `level`."""

    due_at: datetime
    level: int
    after: timedelta

    @property
    def step_id(self) -> str:
        return f"time:{int(self.after.total_seconds())}s:L{self.level}"


def schedule(
    severity: Severity, opened_at: datetime, policy: Policy | None = None
) -> list[EscalationStep]:
    """Every time-based escalation of an incident (monitor cells send nothing)."""
    matrix = policy.matrix if policy else ESCALATION_MATRIX
    return [
        EscalationStep(opened_at + timedelta(seconds=after), level, timedelta(seconds=after))
        for after, level in matrix.get(severity, ())
        if level is not None
    ]


def ack_bounds(reached: int, extra_levels: int) -> tuple[int, int]:
    """(acknowledged level, highest level time may still reach) for an ack now.

    The acknowledged level is the highest already notified (at least the on-call
    engineer). Steps at or below it are answered; steps above `ceiling` are held back.
    """
    acknowledged = max(reached, 1)
    return acknowledged, acknowledged + extra_levels


def plan(
    policy: Policy,
    severity: Severity,
    opened_at: datetime,
    now: datetime,
    *,
    fired: frozenset[str] = frozenset(),
    reached: int = 0,
    ack: tuple[int, int] | None = None,
) -> list[EscalationStep]:
    """The steps still to schedule for an incident at `now`.

    Leaves out steps already fired, steps at or below the level already reached, and,
    after an ack, steps outside (acknowledged, ceiling]. Several steps already overdue
    (a late severity change, a backlog) collapse into the highest one, fired at once.
    """
    steps = [
        s
        for s in schedule(severity, opened_at, policy)
        if s.step_id not in fired
        and s.level > reached
        and (ack is None or ack[0] < s.level <= ack[1])
    ]
    overdue = [s for s in steps if s.due_at <= now]
    if len(overdue) > 1:
        keep = max(overdue, key=lambda s: (s.level, s.after))
        steps = [s for s in steps if s.due_at > now or s is keep]
    return steps


@dataclass(frozen=True)
class Trigger:
    """An automatic escalation that does not wait for time (runbook "Escalation Triggers")."""

    kind: EscalationTrigger
    level: int
    reason: str

    @property
    def step_id(self) -> str:
        return f"trigger:{self.kind.value}"


def immediate_triggers(
    policy: Policy, *, services: set[str], data_loss: bool, security: bool
) -> list[Trigger]:
    """The automatic triggers an incident's facts set off."""
    found: list[Trigger] = []
    if len(services) >= policy.multiple_systems_threshold:
        found.append(
            Trigger(
                EscalationTrigger.MULTIPLE_SYSTEMS,
                policy.trigger_levels[EscalationTrigger.MULTIPLE_SYSTEMS],
                f"{len(services)} systems failing at once: {', '.join(sorted(services))}",
            )
        )
    if data_loss:
        found.append(
            Trigger(
                EscalationTrigger.DATA_LOSS,
                policy.trigger_levels[EscalationTrigger.DATA_LOSS],
                "data loss detected",
            )
        )
    if security:
        found.append(
            Trigger(
                EscalationTrigger.SECURITY,
                policy.trigger_levels[EscalationTrigger.SECURITY],
                "security breach suspected",
            )
        )
    return found


def remediation_trigger(
    policy: Policy,
    *,
    action: str,
    outcome: ActionOutcome,
    escalate: bool,
    detail: str = "",
    on_failure: str = "stop",
) -> Trigger | None:
    """A remediation that failed, timed out or reached its attempt limit escalates at once.

    `escalate` is the remediator's own verdict (e.g. the attempt limit was reached); it
    escalates whatever the outcome. Otherwise the configured outcomes escalate, unless the
    step's playbook goes on past its failure (`on_failure: continue`, e.g. a probe into a
    stopped container while gathering evidence): that failure is a note, not a page.
    """
    if not escalate and (outcome not in policy.remediation_outcomes or on_failure == "continue"):
        return None
    why = f"remediation {action} {outcome.value}"
    if escalate:
        why += " (remediator asks to escalate)"
    if detail:
        why += f": {detail[:300]}"
    return Trigger(
        EscalationTrigger.REMEDIATION_FAILED,
        policy.trigger_levels[EscalationTrigger.REMEDIATION_FAILED],
        why,
    )
