"""Approvals come only from the recorder API (issue 18, findings 4 and 5): an ActionApproved
written to jarvis:incidents by anyone who could XADD made FLUSHDB run, and docker.stop
and docker.recreate ran on allowlisted containers with no approval."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from services.remediator.main import build as build_remediator
from shared.approvals import sign_approval
from shared.events import ActionApproved, ActionRequested, utcnow
from shared.keys import Signer
from shared.settings import Settings
from shared.streams import ACTIONS_COMPLETED, INCIDENTS
from tests.helpers import eventually, read_stream, running

pytestmark = pytest.mark.integration

KEY = "the-approval-key-of-this-test-0123"
TARGET_DB = 10


async def _answers(redis: Redis, action_id: str) -> list[dict[str, Any]]:
    completed = await read_stream(redis, ACTIONS_COMPLETED.key)
    return [c for c in completed if c["action_id"] == action_id]


async def _refusals(redis: Redis, count: int) -> list[dict[str, Any]]:
    notes = [
        e
        for e in await read_stream(redis, INCIDENTS.key)
        if e.get("event_type") == "NoteAdded" and "refused" in e.get("text", "")
    ]
    return notes if len(notes) >= count else []


async def test_only_a_signed_fresh_approval_runs_a_dangerous_action(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    url = redis_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"
    target = Redis.from_url(url)
    await target.set("cache:x", "1")
    settings = make_settings(
        approval_key=KEY,
        remediator={
            "enabled": True,
            "enabled_actions": ["*"],
            "allowed_targets": ["jarvis-redis"],
            "redis_targets": {"jarvis-redis": {"url": url}},
        },
    )
    incident = str(uuid.uuid4())
    request = ActionRequested(
        action="redis.flushdb", target="jarvis-redis", incident_id=incident, producer="triage"
    )
    async with running(settings, [build_remediator]) as (_, runtime):
        await runtime.bus("triage").publish(request)
        await eventually(lambda: _answers(redis, request.action_id))
        # An attacker who can XADD: no signature, a signature of another key, and a real
        # signature of long ago (an approval copied from some timeline).
        unsigned = ActionApproved(action_id=request.action_id, approver="mallory")
        await redis.xadd(INCIDENTS.key, {"__data__": unsigned.to_json()})
        forged = sign_approval(Signer("a-key-mallory-made-up"), action_id=request.action_id)
        await redis.xadd(INCIDENTS.key, {"__data__": forged.to_json()})
        stale = sign_approval(
            Signer(KEY),
            action_id=request.action_id,
            approver="alice",
            occurred_at=utcnow() - timedelta(hours=2),
        )
        await redis.xadd(INCIDENTS.key, {"__data__": stale.to_json()})
        refusals = await eventually(lambda: _refusals(redis, 3))
        assert await target.get("cache:x") == b"1"
        assert [a["outcome"] for a in await _answers(redis, request.action_id)] == [
            "awaiting_approval"
        ]

        approval = sign_approval(Signer(KEY), action_id=request.action_id, approver="alice")
        await redis.xadd(INCIDENTS.key, {"__data__": approval.to_json()})

        async def done() -> list[dict[str, Any]]:
            answers = await _answers(redis, request.action_id)
            return [a for a in answers if a["outcome"] != "awaiting_approval"]

        (answer,) = await eventually(done)
    assert answer["outcome"] == "succeeded"
    assert answer["detail"].startswith("approved by alice")
    assert await target.dbsize() == 0
    await target.aclose()
    reasons = [json.dumps(r["text"]) for r in refusals]
    assert "not signed" in reasons[0]
    assert "signature is not valid" in reasons[1]
    assert "outside the approval window" in reasons[2]
    # On the incident's timeline, said by the remediator.
    assert {(r["incident_id"], r["author"]) for r in refusals} == {(incident, "remediator")}


async def test_stopping_a_container_waits_for_an_operator(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # A container name no engine here has: whatever ran on it would fail, not wait.
    name = f"jarvis-test-{uuid.uuid4().hex[:10]}"
    settings = make_settings(
        remediator={"enabled": True, "enabled_actions": ["*"], "allowed_targets": [name]}
    )
    async with running(settings, [build_remediator]) as (_, runtime):
        bus = runtime.bus("triage")
        requests = [
            ActionRequested(action="docker.stop", target=name, incident_id=str(uuid.uuid4())),
            ActionRequested(action="docker.recreate", target=name, incident_id=str(uuid.uuid4())),
        ]
        for request in requests:
            await bus.publish(request)
        answers = [await eventually(lambda r=r: _answers(redis, r.action_id)) for r in requests]
    assert [a[0]["outcome"] for a in answers] == ["awaiting_approval"] * 2
