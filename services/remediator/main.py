"""Remediator's composition root: ActionRequested in, exactly one ActionCompleted out.

This is the walking skeleton's executor: every action is a dry run (remediation is off
until switched on). Idempotent: a redelivered ActionRequested (same `action_id`) is
answered with the completion already recorded, never executed twice.
"""

from __future__ import annotations

import time
import uuid

from shared.events import ActionCompleted, ActionOutcome, ActionRequested, Event
from shared.runtime import Runtime, Service
from shared.streams import ACTIONS_REQUESTED

__all__ = ["GROUP", "build"]

GROUP = "remediator"
_NS = uuid.UUID("5d0c0a3e-1f7b-4c3e-8d55-2b9e8f4a6c11")
_DONE_TTL_S = 7 * 24 * 3600


def build(runtime: Runtime) -> Service:
    bus = runtime.bus(GROUP)
    redis = runtime.redis

    async def on_action(event: Event) -> None:
        assert isinstance(event, ActionRequested)
        key = f"jarvis:remediator:done:{event.action_id}"
        recorded = await redis.get(key)
        if recorded is not None:
            # Already executed: publish the same completion again (same event_id, so
            # the recorder stores it once) in case the first publish was lost.
            await bus.publish(ActionCompleted.model_validate_json(recorded))
            return
        started = time.perf_counter()
        completed = ActionCompleted(
            event_id=str(uuid.uuid5(_NS, event.action_id)),
            producer=GROUP,
            **event.follow(),
            action_id=event.action_id,
            action=event.action,
            target=event.target,
            outcome=ActionOutcome.SKIPPED,
            dry_run=True,
            duration_ms=(time.perf_counter() - started) * 1000,
            detail=f"dry-run: would run {event.action} on {event.target or 'nothing'}",
            playbook=event.playbook,
            step=event.step,
        )
        await redis.set(key, completed.to_json(), ex=_DONE_TTL_S)
        await bus.publish(completed)

    return Service(name=GROUP, consumers=[runtime.consume(ACTIONS_REQUESTED, GROUP, on_action)])
