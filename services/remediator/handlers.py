"""The remediator's thin handlers: requests, approvals, alerts, and the timeout sweep.

Each handler reads the state it needs, asks the guardrails (pure), runs the executor when
allowed, and publishes exactly one final ActionCompleted per action_id through the
state's atomic scripts (plus an `awaiting_approval` one for dangerous actions).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timedelta

from prometheus_client import Counter

from services.remediator.executor import Executor, Result
from services.remediator.guardrails import (
    LIMITED_ACTIONS,
    REMEDIES,
    FixRecord,
    Verdict,
    VerdictKind,
    apply_blocks,
    apply_maintenance,
    attempt_limit_for,
    decide,
    effective_timeout,
    ineffective_reason,
    target_of_alert,
)
from services.remediator.ports import ActionFailed
from services.remediator.state import RemediatorState
from shared.actions import ActionName
from shared.approvals import approval_problem
from shared.bus import EventBus
from shared.clock import Clock
from shared.events import (
    ActionApproved,
    ActionCompleted,
    ActionOutcome,
    ActionRefused,
    ActionRequested,
    AlertRaised,
    AlertStatus,
    DrillStarted,
    Event,
    IncidentResolved,
    NoteAdded,
    scrub,
)
from shared.keys import Signer
from shared.settings import Settings
from shared.silence_store import SilenceWatch
from shared.silences import alert_labels, canonical_service

__all__ = ["GROUP", "Remediator", "completion_id"]

log = logging.getLogger(__name__)

GROUP = "remediator"
_NS = uuid.UUID("5d0c0a3e-1f7b-4c3e-8d55-2b9e8f4a6c11")
# A run not finished this long after its time limit was lost with its replica.
_INTERRUPTED_GRACE_S = 30.0
_SWEEP_PAGE = 100
_SWEEP_PAGES = 100  # at most 10,000 overdue ids per sweep; the rest at the next one

ACTIONS = Counter(
    "jarvis_remediator_actions_total", "Answers of the remediator.", ["action", "outcome"]
)


def completion_id(action_id: str, suffix: str = "") -> str:
    """Deterministic event id: a republished answer is the very same event."""
    return str(uuid.uuid5(_NS, action_id + suffix))


class Remediator:
    def __init__(
        self,
        settings: Settings,
        state: RemediatorState,
        executor: Executor,
        bus: EventBus,
        clock: Clock,
        silences: SilenceWatch,
        approvals: Signer,
    ) -> None:
        self._approvals = approvals
        self._settings = settings
        self._s = settings.remediator
        self._state = state
        self._executor = executor
        self._bus = bus
        self._clock = clock
        self._silences = silences

    # -- ActionRequested ------------------------------------------------------------
    async def on_action(self, event: Event) -> None:
        assert isinstance(event, ActionRequested)
        request = event
        done = await self._state.done(request.action_id)
        if done is not None:
            # Answered already: the same event again, in case the first publish was lost.
            await self._bus.publish(done)
            return
        awaiting = await self._state.awaiting(request.action_id)
        if awaiting is not None:
            if await self._state.is_pending(request.action_id):
                await self._bus.publish(awaiting)
            return
        now = self._clock.now()
        if not await self._state.claim(request, now + self._run_budget(request)):
            return  # another delivery is running it; the sweep reports a crashed run
        verdict = decide(request, self._s)
        verdict = apply_maintenance(verdict, request, await self._in_maintenance(verdict.targets))
        verdict = apply_blocks(verdict, await self._state.blocks(verdict.targets, now))
        await self._act(request, verdict, started=time.perf_counter())

    async def _silenced(self, alert: AlertRaised, now: datetime) -> bool:
        index = await self._silences.index()
        service = canonical_service(alert.service, self._settings.triage.service_aliases)
        return index.silencing(alert_labels(service, alert.check, alert.labels), now) is not None

    async def _in_maintenance(self, targets: tuple[str, ...]) -> dict[str, tuple[str, datetime]]:
        """The targets a silence in force covers: (silence id, end of its window)."""
        index = await self._silences.index()
        if not index.silences or not targets:
            return {}
        now = self._clock.now()
        triage = self._settings.triage
        found: dict[str, tuple[str, datetime]] = {}
        for target in targets:
            services = {s for s, c in triage.containers.items() if c == target}
            services.add(canonical_service(target, triage.service_aliases))
            for service in sorted(services):
                hit = index.silencing(alert_labels(service, "", {"container": target}), now)
                if hit is not None:
                    found[target] = (hit[0].id, hit[1][1])
                    break
        return found

    async def _act(
        self, request: ActionRequested, verdict: Verdict, *, started: float, prefix: str = ""
    ) -> None:
        if verdict.kind is VerdictKind.EXECUTE:
            await self._execute(request, verdict, started=started, prefix=prefix)
        elif verdict.kind is VerdictKind.SKIP:
            await self._finish(
                self._completion(request, ActionOutcome.SKIPPED, prefix + verdict.reason, started)
            )
        elif verdict.kind is VerdictKind.AWAIT_APPROVAL:
            outcome = ActionOutcome.AWAITING_APPROVAL
            awaiting = self._completion(
                request, outcome, verdict.reason, started, suffix=":awaiting"
            )
            deadline = self._clock.now() + timedelta(seconds=self._s.approval_timeout_s)
            await self._state.park(awaiting, deadline)
            if request.incident_id:
                await self._state.index_pending(request.incident_id, request.action_id)
            ACTIONS.labels(request.action, awaiting.outcome.value).inc()
        else:
            dry = verdict.kind is VerdictKind.DRY_RUN
            outcome = ActionOutcome.SKIPPED if dry else ActionOutcome.REJECTED
            await self._finish(
                self._completion(
                    request,
                    outcome,
                    prefix + verdict.reason,
                    started,
                    dry_run=dry,
                    escalate=verdict.escalate,
                )
            )

    async def _execute(
        self, request: ActionRequested, verdict: Verdict, *, started: float, prefix: str
    ) -> None:
        assert verdict.action is not None
        action = verdict.action
        if request.when is not None:
            # Checked when the step would run, not when the playbook was written: "back up
            # PostgreSQL" makes no sense while it is stopped. A skip is not an attempt.
            holds, found = await self._executor.condition(request.when)
            if not holds:
                detail = f"skipped: {found} (the step runs when {request.when.describe()})"
                await self._finish(
                    self._completion(request, ActionOutcome.SKIPPED, prefix + detail, started)
                )
                return
        unchanged = await self._executor.already_done(action, verdict.params, verdict.targets)
        if unchanged is not None:
            # Nothing to change (Ollama limited by an earlier incident): not an attempt and
            # not a fix, so a busy host's repeated incidents do not use up the budget.
            await self._finish(
                self._completion(request, ActionOutcome.SUCCEEDED, prefix + unchanged, started)
            )
            return
        now = self._clock.now()
        limit = attempt_limit_for(action, self._s)
        if limit is not None:
            scope = ",".join(verdict.targets) or "stack"
            allowed, count = await self._state.attempt(
                action.value, scope, request.action_id, now, limit.max_attempts, limit.window_s
            )
            if not allowed:
                detail = (
                    f"attempt limit reached: {count} runs of {action.value} on {scope} within "
                    f"{limit.window_s:g} s (at most {limit.max_attempts}); automatic action "
                    "stopped, escalating"
                )
                await self._finish(
                    self._completion(
                        request, ActionOutcome.REJECTED, prefix + detail, started, escalate=True
                    )
                )
                return
        timeout_s = effective_timeout(request, action, self._s)
        if action in LIMITED_ACTIONS:
            # Acting on a target again supersedes its last fix: the alerts this action itself
            # causes (the backend stopped during an ordered restart) do not make that fix
            # "ineffective". This action's own success is remembered afresh below.
            await self._state.forget_fixes(verdict.targets)
        result: Result | None = None
        try:
            result = await asyncio.wait_for(
                self._executor.run(
                    request, action, verdict.params, verdict.targets, now, timeout_s
                ),
                timeout_s,
            )
            outcome, detail, artifacts = ActionOutcome.SUCCEEDED, result.detail, result.artifacts
        except TimeoutError:
            outcome, artifacts = ActionOutcome.TIMED_OUT, []
            detail = f"{action.value} did not finish within {timeout_s:g} s"
        except ActionFailed as exc:
            outcome, detail, artifacts = ActionOutcome.FAILED, str(exc), exc.artifacts
        except Exception as exc:
            log.exception("remediator: %s (%s) failed", action.value, request.action_id)
            outcome, detail, artifacts = ActionOutcome.FAILED, f"{type(exc).__name__}: {exc}", []
        if outcome is ActionOutcome.SUCCEEDED and action in REMEDIES:
            await self._remember_fix(request, action, verdict)
        await self._finish(
            self._completion(request, outcome, prefix + detail, started, artifacts=artifacts)
        )

    async def _remember_fix(
        self, request: ActionRequested, action: ActionName, verdict: Verdict
    ) -> None:
        asked = getattr(verdict.params, "fingerprint", None)
        for target in verdict.targets:
            fingerprints = await self._state.firing(target)
            if asked:
                fingerprints.add(asked)
            if not fingerprints and request.incident_id:
                # A playbook's step on a target with no alert of its own (Ollama limited
                # because the host runs hot) answered nothing there: a later alert on that
                # target is news, not proof that this step failed.
                continue
            fix = FixRecord(
                action_id=request.action_id,
                action=action.value,
                target=target,
                at=self._clock.now(),
                fingerprints=frozenset(fingerprints),
                incident_id=request.incident_id,
                correlation_id=request.correlation_id,
            )
            await self._state.record_fix(fix, self._s.ineffective_window_s)

    # -- ActionApproved, IncidentResolved ----------------------------------------------
    async def on_incident_event(self, event: Event) -> None:
        if isinstance(event, ActionRefused):
            await self._refused(event)
            return
        if isinstance(event, IncidentResolved) and event.incident_id:
            await self._expire_approvals(event)
            return
        if isinstance(event, DrillStarted):
            # A fault injected on purpose says nothing about the target's last fix: the
            # drill's alerts must not stop automatic action as "ineffective remediation".
            await self._state.forget_fixes((event.target,))
            return
        if not isinstance(event, ActionApproved):
            return
        window = timedelta(seconds=self._s.approval_timeout_s)
        problem = approval_problem(self._approvals, event, self._clock.now(), window)
        if problem is not None:
            await self._refuse_approval(event, problem)
            return
        started = time.perf_counter()
        stored = await self._state.request(event.action_id)
        budget = self._run_budget(stored) if stored else timedelta(seconds=60)
        request = await self._state.take_approved(event.action_id, self._clock.now() + budget)
        if request is None:
            log.info("approval of %r ignored: it is not waiting for one", event.action_id)
            return
        verdict = decide(request, self._s, approved=True)
        now = self._clock.now()
        verdict = apply_blocks(verdict, await self._state.blocks(verdict.targets, now))
        await self._act(request, verdict, started=started, prefix=f"approved by {event.approver}: ")

    async def _refused(self, event: ActionRefused) -> None:
        """An operator said no: the action waiting for approval is answered `rejected`
        (naming who and why) and never runs; its playbook stops as for any rejection."""
        started = time.perf_counter()
        grace = timedelta(seconds=_INTERRUPTED_GRACE_S)
        request = await self._state.take_approved(event.action_id, self._clock.now() + grace)
        if request is None:
            log.info("refusal of %r ignored: it is not waiting for approval", event.action_id)
            return
        why = f": {event.reason}" if event.reason else ""
        await self._finish(
            self._completion(
                request, ActionOutcome.REJECTED, f"refused by {event.by}{why}; not run", started
            )
        )

    async def _refuse_approval(self, approval: ActionApproved, problem: str) -> None:
        """Run nothing, and say so on the incident's timeline: whoever wrote this approval
        to the stream did not go through the recorder API."""
        stored = await self._state.request(approval.action_id)
        incident_id = stored.incident_id if stored else None
        text = (
            f"approval of action {approval.action_id!r} (by {approval.approver!r}) refused: "
            f"{problem}; nothing was run"
        )
        log.warning("remediator: %s", text)
        await self._bus.publish(
            NoteAdded(
                event_id=completion_id(approval.event_id, ":approval-refused"),
                producer=GROUP,
                incident_id=incident_id,
                correlation_id=incident_id,
                causation_id=approval.event_id,
                author=GROUP,
                text=text,
            )
        )
        ACTIONS.labels(stored.action if stored else "unknown", "approval_refused").inc()

    async def _expire_approvals(self, resolved: IncidentResolved) -> None:
        """An approval cannot outlive its reason: what waits for one when its incident is
        resolved expires (answered `skipped`, nothing run); a later approval finds nothing."""
        incident_id = resolved.incident_id or ""
        for action_id in await self._state.pending_of(incident_id):
            request = await self._state.request(action_id)
            if request is None:
                continue
            detail = (
                f"expired: incident {incident_id} was resolved by {resolved.by} before an "
                "operator approved; not run"
            )
            completion = self._completion(
                request, ActionOutcome.SKIPPED, detail, time.perf_counter()
            )
            if await self._state.withdraw(completion):
                ACTIONS.labels(request.action, "expired").inc()
                log.info("remediator: %s %s", request.action, detail)

    # -- AlertRaised: was a fix ineffective? ------------------------------------------
    async def on_alert(self, event: Event) -> None:
        assert isinstance(event, AlertRaised)
        alert = event
        target = target_of_alert(alert, self._s)
        if target is None:
            return
        now = self._clock.now()
        firing = alert.status is AlertStatus.FIRING
        await self._state.note_alert(
            target, alert.fingerprint, firing, now, self._s.ineffective_window_s
        )
        fix = await self._state.fix(target) if firing else None
        if fix is not None and await self._silenced(alert, now):
            # Planned work makes alerts fire: that is no evidence against the last fix,
            # and a silenced alert must not page anyone through an escalation.
            return
        reason = ineffective_reason(fix, alert, now, self._s) if fix else None
        if fix is None or reason is None:
            return
        detail = (
            f"{reason}; automatic action on {target} stopped for {self._s.block_s:g} s, escalating"
        )
        until = now + timedelta(seconds=self._s.block_s)
        await self._state.block(target, reason, until, self._s.block_s)
        escalation = ActionCompleted(
            event_id=completion_id(fix.action_id, ":ineffective"),
            producer=GROUP,
            incident_id=fix.incident_id or alert.incident_id,
            correlation_id=fix.correlation_id or fix.incident_id or alert.correlation_id,
            causation_id=alert.event_id,
            action_id=completion_id(fix.action_id, ":ineffective-action"),
            action=fix.action,
            target=target,
            outcome=ActionOutcome.FAILED,
            detail=detail,
            escalate=True,
        )
        await self._bus.publish(escalation)
        ACTIONS.labels(fix.action, "ineffective").inc()
        await self._state.clear_fix(target, fix.action_id)

    # -- timeouts -------------------------------------------------------------------
    async def sweep(self) -> int:
        """Answer approvals that timed out and runs lost with a crashed replica. Every
        overdue id is looked at, page by page; one whose request is gone is dropped (it
        would otherwise be found first at every sweep, for ever)."""
        now = self._clock.now()
        answered = 0
        for which in ("pending", "inflight"):
            for _ in range(_SWEEP_PAGES):
                overdue = await self._state.overdue(which, now, limit=_SWEEP_PAGE)
                for action_id in overdue:
                    answered += await self._answer_overdue(which, action_id, now)
                if len(overdue) < _SWEEP_PAGE:
                    break
        return answered

    async def _answer_overdue(self, which: str, action_id: str, now: datetime) -> int:
        request = await self._state.request(action_id)
        if request is None:
            log.warning("remediator: %s %s has no stored request; dropped", which, action_id)
            await self._state.forget(which, action_id)
            return 0
        if which == "pending":
            outcome = ActionOutcome.TIMED_OUT
            detail = f"no approval within {self._s.approval_timeout_s:g} s; not run"
        else:
            outcome = ActionOutcome.FAILED
            detail = "interrupted: the replica running it stopped; not run again"
        completion = self._completion(request, outcome, detail, time.perf_counter())
        if await self._state.expire(which, completion, now):
            ACTIONS.labels(request.action, outcome.value).inc()
            return 1
        return 0

    async def sweep_forever(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(self._s.tick_s)

    # -- helpers --------------------------------------------------------------------
    def _run_budget(self, request: ActionRequested) -> timedelta:
        try:
            action = ActionName(request.action)
        except ValueError:
            return timedelta(seconds=_INTERRUPTED_GRACE_S)
        return timedelta(seconds=effective_timeout(request, action, self._s) + _INTERRUPTED_GRACE_S)

    def _completion(
        self,
        request: ActionRequested,
        outcome: ActionOutcome,
        detail: str,
        started: float,
        *,
        dry_run: bool = False,
        artifacts: list[str] | None = None,
        escalate: bool = False,
        suffix: str = "",
    ) -> ActionCompleted:
        return ActionCompleted(
            event_id=completion_id(request.action_id, suffix),
            producer=GROUP,
            **request.follow(),
            action_id=request.action_id,
            action=request.action,
            target=request.target,
            outcome=outcome,
            dry_run=dry_run,
            duration_ms=max(time.perf_counter() - started, 0.0) * 1000,
            detail=scrub(detail)[:8000],
            artifacts=artifacts or [],
            playbook=request.playbook,
            step=request.step,
            escalate=escalate,
            on_failure=request.on_failure,
        )

    async def _finish(self, completion: ActionCompleted) -> None:
        if await self._state.finish(completion):
            ACTIONS.labels(completion.action, completion.outcome.value).inc()
            log.info(
                # Event text with %r: a line break in it cannot forge a log line.
                "remediator: %s on %r → %s (%r)",
                completion.action,
                completion.target or "-",
                completion.outcome.value,
                completion.detail[:200],
            )
        else:  # answered meanwhile (e.g. reported interrupted after overrunning its budget)
            log.warning(
                "remediator: %r already answered; late result dropped: %r",
                completion.action_id,
                completion.detail[:200],
            )
