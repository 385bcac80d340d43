"""The remediator's guardrails as pure decisions: what may run, what waits, what is refused.

Nothing here does I/O: the handler reads the state it needs (is the target blocked?),
calls `decide`, and acts on the verdict. The order of the checks is the order of the
documentation (docs/remediator.md): vocabulary → allowlist → parameters → dry-run →
approval (`decide`), then blocked targets (`apply_blocks`). The attempt limit is counted
atomically in Redis when the action is about to run, with the limit `attempt_limit_for`
returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.remediator.params import (
    CONTAINER_NAME,
    SAFE_ID,
    ActionParams,
    InvalidParams,
    OrderedRestartParams,
    parse_params,
)
from shared.actions import DANGEROUS_ACTIONS, ActionName
from shared.events import ActionRequested, AlertRaised, AlertStatus
from shared.settings import RemediatorAttemptLimit, RemediatorSettings

__all__ = [
    "LIMITED_ACTIONS",
    "REMEDIES",
    "FixRecord",
    "Verdict",
    "VerdictKind",
    "apply_blocks",
    "apply_maintenance",
    "attempt_limit_for",
    "decide",
    "effective_timeout",
    "ineffective_reason",
    "is_dangerous",
    "target_of_alert",
    "targets_of",
]

# Actions that change the stack: each run counts against the target's attempt limit,
# and they stop when the target is blocked. Reads and backups are never limited.
LIMITED_ACTIONS: frozenset[ActionName] = frozenset(
    {
        ActionName.DOCKER_RESTART,
        ActionName.DOCKER_STOP,
        ActionName.DOCKER_START,
        ActionName.DOCKER_RECREATE,
        ActionName.DOCKER_UPDATE_LIMITS,
        ActionName.OLLAMA_PULL,
        ActionName.RECOVERY_ORDERED_RESTART,
        ActionName.DOCKER_SYSTEM_PRUNE,
        ActionName.DOCKER_VOLUME_PRUNE,
        ActionName.REDIS_FLUSHDB,
    }
)
# Successful runs of these are "fixes": the same alert firing again soon after means
# the fix was ineffective.
REMEDIES: frozenset[ActionName] = frozenset(
    {
        ActionName.DOCKER_RESTART,
        ActionName.DOCKER_START,
        ActionName.DOCKER_RECREATE,
        ActionName.DOCKER_UPDATE_LIMITS,
        ActionName.OLLAMA_PULL,
        ActionName.RECOVERY_ORDERED_RESTART,
    }
)
_NEEDS_TARGET: frozenset[ActionName] = frozenset(
    {
        ActionName.DOCKER_RESTART,
        ActionName.DOCKER_STOP,
        ActionName.DOCKER_START,
        ActionName.DOCKER_RECREATE,
        ActionName.DOCKER_UPDATE_LIMITS,
        ActionName.DOCKER_LOGS,
    }
)
_POSTGRES: frozenset[ActionName] = frozenset(
    {ActionName.POSTGRES_BACKUP, ActionName.POSTGRES_WAIT_READY, ActionName.POSTGRES_CONNECTIONS}
)
_REDIS: frozenset[ActionName] = frozenset({ActionName.REDIS_BGSAVE, ActionName.REDIS_FLUSHDB})


class VerdictKind(StrEnum):
    EXECUTE = "execute"
    DRY_RUN = "dry_run"
    REJECT = "reject"
    AWAIT_APPROVAL = "await_approval"
    SKIP = "skip"  # not run, on purpose (a maintenance window): not a failure


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    reason: str = ""
    escalate: bool = False
    action: ActionName | None = None
    params: ActionParams | None = None
    targets: tuple[str, ...] = ()


def is_dangerous(request: ActionRequested, s: RemediatorSettings | None = None) -> bool:
    """Needs an operator's approval: the request says so, the action is one of the runbook's
    destructive commands, or the configuration lists it (`approval_required`, when `s` is
    given)."""
    return (
        request.dangerous
        or request.action in {a.value for a in DANGEROUS_ACTIONS}
        or (s is not None and request.action in s.approval_required)
    )


def targets_of(
    action: ActionName, request: ActionRequested, params: ActionParams, s: RemediatorSettings
) -> tuple[str, ...]:
    """Every target the action touches (defaults filled in from the settings)."""
    if action is ActionName.RECOVERY_ORDERED_RESTART:
        assert isinstance(params, OrderedRestartParams)
        return (params.backend or s.backend_container, params.database or s.database_container)
    if request.target:
        return (request.target,)
    defaults = {
        ActionName.OLLAMA_PULL: s.ollama_container,
        ActionName.POSTGRES_BACKUP: s.database_container,
        ActionName.POSTGRES_WAIT_READY: s.database_container,
        ActionName.POSTGRES_CONNECTIONS: s.database_container,
        ActionName.REDIS_BGSAVE: s.redis_container,
        ActionName.REDIS_FLUSHDB: s.redis_container,
    }
    return (defaults[action],) if action in defaults else ()


def _allowed(name: str, allowlist: list[str]) -> bool:
    return "*" in allowlist or name in allowlist


def decide(
    request: ActionRequested,
    s: RemediatorSettings,
    *,
    approved: bool = False,
) -> Verdict:
    """What to do with `request` (before looking at blocks and attempts in Redis)."""
    try:
        action = ActionName(request.action)
    except ValueError:
        return Verdict(VerdictKind.REJECT, f"action: {request.action!r} is not in the vocabulary")
    if not _allowed(action.value, s.allowed_actions):
        return Verdict(VerdictKind.REJECT, f"action: {action.value} is not on the allowlist")
    if request.target and not CONTAINER_NAME.fullmatch(request.target):
        return Verdict(VerdictKind.REJECT, f"target: {request.target!r} is not a valid name")
    if action in _NEEDS_TARGET and not request.target:
        return Verdict(VerdictKind.REJECT, f"target: {action.value} needs a container name")
    if action in (ActionName.DOCKER_SYSTEM_PRUNE, ActionName.DOCKER_VOLUME_PRUNE) and (
        request.target
    ):
        return Verdict(VerdictKind.REJECT, f"target: {action.value} takes no target")
    for label, value in (("incident_id", request.incident_id), ("action_id", request.action_id)):
        if value is not None and not SAFE_ID.fullmatch(value):
            return Verdict(VerdictKind.REJECT, f"{label}: {value!r} is not a safe identifier")
    try:
        params = parse_params(action, request.params)
    except InvalidParams as exc:
        return Verdict(VerdictKind.REJECT, str(exc))
    targets = targets_of(action, request, params, s)
    # Actions that change something only touch allowlisted targets; reading evidence
    # (diagnostics, stats, logs) is harmless on any container with a valid name.
    for target in targets if action in LIMITED_ACTIONS or is_dangerous(request, s) else ():
        if not _allowed(target, s.allowed_targets):
            return Verdict(VerdictKind.REJECT, f"target: {target} is not on the allowlist")
    if action in _POSTGRES and targets[0] not in s.postgres_targets:
        return Verdict(VerdictKind.REJECT, f"target: {targets[0]} is not a PostgreSQL target")
    if action in _REDIS and targets[0] not in s.redis_targets:
        return Verdict(VerdictKind.REJECT, f"target: {targets[0]} is not a Redis target")

    found = Verdict(VerdictKind.EXECUTE, action=action, params=params, targets=targets)
    if not s.enabled or not _allowed(action.value, s.enabled_actions):
        switch = "remediation is not enabled" if not s.enabled else f"{action.value} is not enabled"
        what = f"{action.value} on {', '.join(targets) or 'the stack'}"
        return _with(found, VerdictKind.DRY_RUN, f"dry-run ({switch}): would run {what}")
    if is_dangerous(request, s) and not approved:
        return _with(
            found,
            VerdictKind.AWAIT_APPROVAL,
            f"{action.value} is dangerous: waiting for POST /api/v1/actions/"
            f"{request.action_id}/approve (timeout {s.approval_timeout_s:g} s)",
        )
    return found


def apply_blocks(verdict: Verdict, blocked: dict[str, str]) -> Verdict:
    """Refuse a changing action on a target where automatic action was stopped
    (`blocked` maps such targets to the reason); reads and backups still run."""
    if verdict.kind not in (VerdictKind.EXECUTE, VerdictKind.AWAIT_APPROVAL):
        return verdict
    if verdict.action not in LIMITED_ACTIONS:
        return verdict
    for target in verdict.targets:
        if target in blocked:
            reason = f"automatic action on {target} is stopped: {blocked[target]}"
            return _with(verdict, VerdictKind.REJECT, reason, escalate=True)
    return verdict


def apply_maintenance(
    verdict: Verdict, request: ActionRequested, silenced: dict[str, tuple[str, datetime]]
) -> Verdict:
    """Run no automatic (playbook) action that changes a target inside a maintenance
    window: `silenced` maps such targets to (silence id, window end). People do planned
    work there; a playbook restarting what they stopped would undo it. Reads and backups
    still run, and so does what an operator asks for or approves himself."""
    if verdict.kind not in (VerdictKind.EXECUTE, VerdictKind.AWAIT_APPROVAL):
        return verdict
    if not request.requested_by.startswith("playbook:"):
        return verdict
    if verdict.action not in LIMITED_ACTIONS and not is_dangerous(request):
        return verdict
    for target in verdict.targets:
        if target in silenced:
            silence_id, until = silenced[target]
            reason = (
                f"not run: {target} is in a maintenance window (silenced by {silence_id} "
                f"until {until:%Y-%m-%d %H:%M} UTC); automatic action waits for people"
            )
            return _with(verdict, VerdictKind.SKIP, reason)
    return verdict


def _with(verdict: Verdict, kind: VerdictKind, reason: str, *, escalate: bool = False) -> Verdict:
    return Verdict(kind, reason, escalate, verdict.action, verdict.params, verdict.targets)


def attempt_limit_for(action: ActionName, s: RemediatorSettings) -> RemediatorAttemptLimit | None:
    """The attempt limit of `action` per target, or None when it is not limited."""
    if action not in LIMITED_ACTIONS:
        return None
    return s.attempt_limits.get(action.value, s.attempt_limit)


def effective_timeout(request: ActionRequested, action: ActionName, s: RemediatorSettings) -> float:
    """The request's time limit, capped by the configured ones."""
    cap = s.action_timeouts_s.get(action.value, s.max_action_timeout_s)
    return min(request.timeout_s, cap, s.max_action_timeout_s)


def target_of_alert(alert: AlertRaised, s: RemediatorSettings) -> str | None:
    """The container an alert is about: its `container` label, else its service's container."""
    label = alert.labels.get("container")
    if label and CONTAINER_NAME.fullmatch(label):
        return label
    mapped = s.service_containers.get(alert.service)
    if mapped:
        return mapped
    return alert.service if alert.service in s.allowed_targets else None


@dataclass(frozen=True)
class FixRecord:
    """A successful remedy on a target, remembered to spot an ineffective fix."""

    action_id: str
    action: str
    target: str
    at: datetime
    fingerprints: frozenset[str]
    incident_id: str | None = None
    correlation_id: str | None = None


def ineffective_reason(
    fix: FixRecord, alert: AlertRaised, now: datetime, s: RemediatorSettings
) -> str | None:
    """Why `alert` shows `fix` did not work, or None when it does not.

    The alert must fire on the fixed target within the window after the fix (alerts in
    the first `ineffective_grace_s` were already in flight). When the fix knows which
    alerts it answered, only those fingerprints count; else any alert on the target does.
    """
    if alert.status is not AlertStatus.FIRING:
        return None
    elapsed = (now - fix.at).total_seconds()
    if elapsed < s.ineffective_grace_s or elapsed > s.ineffective_window_s:
        return None
    if fix.fingerprints and alert.fingerprint not in fix.fingerprints:
        return None
    what = alert.summary or f"{alert.service}/{alert.check}"
    return (
        f"ineffective remediation: alert {what!r} ({alert.fingerprint}) fired again "
        f"{elapsed:.0f} s after {fix.action} of {fix.target} succeeded (action {fix.action_id})"
    )
