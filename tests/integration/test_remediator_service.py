"""The remediator as a service on the real bus: guardrails, approvals, limits,
ineffective fixes and idempotency under redelivery, acting on real Redis and Docker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from services.remediator.main import build
from services.remediator.state import RemediatorState
from shared.approvals import sign_approval
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import (
    ActionApproved,
    ActionRefused,
    ActionRequested,
    AlertRaised,
    AlertStatus,
    Event,
    utcnow,
)
from shared.keys import Signer
from shared.settings import Settings
from shared.silence_store import SilenceStore
from shared.silences import Matcher, SilenceSpec
from shared.streams import ACTIONS_COMPLETED
from tests.helpers import eventually, read_stream, running
from tests.integration.remediator_fixtures import (  # noqa: F401 - fixtures
    Containers,
    answers,
    containers_fixture,
    docker_client_fixture,
    final_answer,
    free_port,
    wait_http,
)

pytestmark = pytest.mark.integration

TARGET_DB = 9
APPROVAL_KEY = "approval-key-of-the-remediator-tests"


def _approval(action_id: str, by: str) -> ActionApproved:
    """An approval as the recorder API makes it: signed with the approval key."""
    return sign_approval(Signer(APPROVAL_KEY), action_id=action_id, approver=by)


def _request(action: str, target: str = "", **fields: Any) -> ActionRequested:
    return ActionRequested(
        action=action,
        target=target,
        incident_id=str(uuid.uuid4()),
        **{"requested_by": "test", **fields},
    )


@contextlib.asynccontextmanager
async def _remediator(
    settings: Settings, clock: ManualClock | None = None
) -> AsyncIterator[EventBus]:
    async with running(settings, [build], clock=clock) as (_client, runtime):
        yield runtime.bus("test")


def _enabled(make_settings: Callable[..., Settings], **section: Any) -> Settings:
    base: dict[str, Any] = {"enabled": True, "enabled_actions": ["*"], "tick_s": 0.05}
    return make_settings(remediator={**base, **section})


async def test_everything_is_a_dry_run_until_switched_on(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with _remediator(make_settings()) as bus:
        request = _request("docker.restart", "backend")
        await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
    assert answer["outcome"] == "skipped"
    assert answer["dry_run"] is True
    assert "remediation is not enabled" in answer["detail"]
    assert answer["causation_id"] == request.event_id

    settings = make_settings(remediator={"enabled": True, "enabled_actions": ["docker.stats"]})
    async with _remediator(settings) as bus:
        request = _request("docker.restart", "backend")
        await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
    assert answer["outcome"] == "skipped"
    assert answer["dry_run"] is True
    assert "docker.restart is not enabled" in answer["detail"]


@pytest.mark.parametrize(
    ("action", "target", "params", "reason"),
    [
        ("docker.exec", "backend", {}, "not in the vocabulary"),
        ("docker.restart", "sutazai-neo4j", {}, "target: sutazai-neo4j is not on the allowlist"),
        ("docker.restart", "../../etc", {}, "is not a valid name"),
        ("docker.restart", "", {}, "needs a container name"),
        ("docker.update_limits", "backend", {"memory": "lots"}, "params.memory"),
        ("docker.logs", "backend", {"tail": 5, "follow": True}, "params.follow"),
        ("ollama.pull", "", {"model": "x; rm -rf /"}, "not a model name"),
        ("docker.stop", "backend", {}, "docker.stop is not on the allowlist"),
    ],
)
async def test_anything_off_the_allowlist_or_invalid_is_rejected(
    redis: Redis,
    make_settings: Callable[..., Settings],
    action: str,
    target: str,
    params: dict[str, Any],
    reason: str,
) -> None:
    settings = _enabled(
        make_settings,
        allowed_targets=["backend", "sutazai-ollama"],
        allowed_actions=["docker.restart", "docker.update_limits", "docker.logs", "ollama.pull"],
    )
    async with _remediator(settings):
        # Written as another system would, so even names the model refuses get through.
        body = _request("docker.stats", "backend").model_dump(mode="json")
        body.update(action=action, target=target, params=params)
        await redis.xadd(
            "jarvis:actions:requested", {"__data__": ActionRequested.model_validate(body).to_json()}
        )
        answer = await final_answer(redis, body["action_id"])
    assert answer["outcome"] == "rejected"
    assert reason in answer["detail"]
    assert answer["dry_run"] is False


async def _flushdb_setup(redis_url: str) -> tuple[Redis, dict[str, Any]]:
    url = redis_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"
    target = Redis.from_url(url)
    await target.set("cache:x", "1")
    section = {"allowed_targets": ["jarvis-redis"], "redis_targets": {"jarvis-redis": {"url": url}}}
    return target, section


async def test_dangerous_action_runs_only_after_approval(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target, section = await _flushdb_setup(redis_url)
    settings = _enabled(make_settings, **section).model_copy(update={"approval_key": APPROVAL_KEY})
    async with _remediator(settings) as bus:
        request = _request("redis.flushdb", "jarvis-redis")
        await bus.publish(request)

        async def awaiting() -> list[dict[str, Any]]:
            return await answers(redis, request.action_id)

        first = (await eventually(awaiting))[0]
        assert first["outcome"] == "awaiting_approval"
        assert f"/api/v1/actions/{request.action_id}/approve" in first["detail"]
        await bus.publish(request)  # redelivered while waiting: still waits, runs nothing
        await eventually(lambda: _count_is(redis, request.action_id, 2))
        assert await target.get("cache:x") == b"1"

        await bus.publish(_approval(request.action_id, "alice"))
        answer = await final_answer(redis, request.action_id)
        assert answer["outcome"] == "succeeded"
        assert answer["detail"].startswith("approved by alice: FLUSHDB on jarvis-redis: 1 keys")
        assert await target.dbsize() == 0

        await target.set("cache:y", "1")
        await bus.publish(_approval(request.action_id, "bob"))
        await bus.publish(request)
        await eventually(lambda: _count_is(redis, request.action_id, 4))
    found = await answers(redis, request.action_id)
    assert [a["outcome"] for a in found].count("succeeded") == 2  # republished, same event
    assert len({a["event_id"] for a in found if a["outcome"] == "succeeded"}) == 1
    assert await target.get("cache:y") == b"1"  # never executed twice
    await target.aclose()


async def _count_is(redis: Redis, action_id: str, n: int) -> bool:
    return len(await answers(redis, action_id)) == n


async def test_approval_has_a_timeout(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target, section = await _flushdb_setup(redis_url)
    clock = ManualClock()
    settings = _enabled(make_settings, approval_timeout_s=60, **section)
    async with _remediator(settings, clock) as bus:
        request = _request("docker.restart", "jarvis-redis", dangerous=True, params={})
        flush = _request("redis.flushdb", "jarvis-redis")
        await bus.publish(flush)
        await eventually(lambda: _count_is(redis, flush.action_id, 1))
        clock.advance(61)
        answer = await final_answer(redis, flush.action_id)
        assert answer["outcome"] == "timed_out"
        assert "no approval within 60 s" in answer["detail"]
        await bus.publish(_approval(flush.action_id, "operator"))
        await bus.publish(request)  # marked dangerous by the requester: waits too
        await eventually(lambda: _count_is(redis, request.action_id, 1))
    assert (await answers(redis, request.action_id))[0]["outcome"] == "awaiting_approval"
    assert await target.get("cache:x") == b"1"
    await target.aclose()


async def test_a_claimed_run_whose_replica_died_is_reported_not_rerun(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target, section = await _flushdb_setup(redis_url)
    clock = ManualClock()
    request = _request("redis.bgsave", "jarvis-redis", timeout_s=5)
    # Another replica claimed it and died before answering.
    await RemediatorState(redis).claim(request, clock.now() + timedelta(seconds=35))
    async with _remediator(_enabled(make_settings, **section), clock) as bus:
        await bus.publish(request)
        await bus.publish(request)
        clock.advance(36)
        answer = await final_answer(redis, request.action_id)
    assert answer["outcome"] == "failed"
    assert "interrupted" in answer["detail"]
    assert len(await answers(redis, request.action_id)) == 1
    await target.aclose()


async def test_replicas_execute_each_action_once_under_redelivery(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = _enabled(
        make_settings,
        allowed_targets=["*"],
        redis_container="jarvis-redis",
        redis_targets={"jarvis-redis": {"url": redis_url}},
    )
    requests = [_request("verify.all", params={"checks": ["redis"]}) for _ in range(6)]
    async with _remediator(settings) as bus_a, _remediator(settings) as bus_b:
        for request in requests:
            await bus_a.publish(request)
            await bus_b.publish(request)  # the same action_id twice
        for request in requests:
            answer = await final_answer(redis, request.action_id)
            assert answer["outcome"] == "succeeded", answer["detail"]
    for request in requests:
        found = await answers(redis, request.action_id)
        # A delivery arriving while the other replica runs it is dropped; one arriving
        # after the answer republishes the very same event. Never a second run.
        assert 1 <= len(found) <= 2
        assert len({a["event_id"] for a in found}) == 1
        folder = settings.data_dir / "incidents" / str(request.incident_id)
        assert len(list(folder.glob("verification_*.json"))) == 1


@pytest.mark.docker
async def test_restart_through_the_bus_and_redelivery_never_runs_twice(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    port = free_port()
    box = containers.httpd(port)
    wait_http(f"http://127.0.0.1:{port}/health")
    # docker.recreate waits for an operator by default; this test is about redelivery.
    settings = _enabled(make_settings, allowed_targets=[box.name], approval_required=[])
    async with _remediator(settings) as bus:
        request = _request("docker.recreate", box.name, params={"stop_timeout_s": 2})
        for _ in range(3):
            await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
        await eventually(lambda: _count_is(redis, request.action_id, 3))
        logs = _request("docker.logs", box.name, params={"since_s": 600})
        await bus.publish(logs)
        logs_answer = await final_answer(redis, logs.action_id)
    assert answer["outcome"] == "succeeded", answer["detail"]
    assert answer["duration_ms"] > 0
    new_id = containers.inspect(box.name)["Id"]
    assert f"→ {new_id[:12]};" in answer["detail"]  # recreated once: still that container
    assert logs_answer["outcome"] == "succeeded"
    artifact = Path(logs_answer["artifacts"][0])
    assert artifact.parent == settings.data_dir.resolve() / "incidents" / str(logs.incident_id)
    assert "started" in artifact.read_text()  # noqa: ASYNC240 - test inspection


@pytest.mark.docker
async def test_attempt_limit_stops_automatic_action_and_escalates(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    box = containers.run("exec sleep 100000", network_mode="none")
    settings = _enabled(
        make_settings,
        allowed_targets=[box.name],
        attempt_limits={"docker.restart": {"max_attempts": 2, "window_s": 1800}},
    )
    async with _remediator(settings) as bus:
        answers = []
        for _ in range(3):
            request = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
            await bus.publish(request)
            answers.append(await final_answer(redis, request.action_id))
    assert [a["outcome"] for a in answers] == ["succeeded", "succeeded", "rejected"]
    assert answers[2]["escalate"] is True
    assert "attempt limit reached: 2 runs of docker.restart" in answers[2]["detail"]
    assert [a["escalate"] for a in answers[:2]] == [False, False]


@pytest.mark.docker
async def test_an_ineffective_fix_stops_automatic_action_and_escalates(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    box = containers.run("exec sleep 100000", network_mode="none")
    clock = ManualClock()
    settings = _enabled(make_settings, allowed_targets=[box.name], ineffective_grace_s=5)
    alert = AlertRaised(service="backend", check="health", labels={"container": box.name})
    async with _remediator(settings, clock) as bus:
        await bus.publish(alert)
        await eventually(lambda: _firing(redis, box.name))
        fix = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
        await bus.publish(fix)
        assert (await final_answer(redis, fix.action_id))["outcome"] == "succeeded"

        clock.advance(60)
        await bus.publish(_again(alert, AlertStatus.RESOLVED))
        await bus.publish(_again(alert, AlertStatus.FIRING))

        async def escalation() -> list[dict[str, Any]]:
            rows = await read_stream(redis, ACTIONS_COMPLETED.key)
            return [r for r in rows if r["escalate"] and r["outcome"] == "failed"]

        escalated = (await eventually(escalation))[0]
        assert "ineffective remediation" in escalated["detail"]
        assert escalated["incident_id"] == fix.incident_id
        assert escalated["target"] == box.name

        again = _request("docker.restart", box.name)
        await bus.publish(again)
        refused = await final_answer(redis, again.action_id)
        stats = _request("docker.stats", box.name)
        await bus.publish(stats)
        still_reads = await final_answer(redis, stats.action_id)
    assert refused["outcome"] == "rejected"
    assert refused["escalate"] is True
    assert f"automatic action on {box.name} is stopped" in refused["detail"]
    assert still_reads["outcome"] == "succeeded"


def _again(alert: AlertRaised, status: AlertStatus) -> Event:
    return alert.model_copy(update={"event_id": str(uuid.uuid4()), "status": status})


async def _firing(redis: Redis, target: str) -> bool:
    return bool(await redis.hlen(f"jarvis:remediator:firing:{target}"))


async def test_a_refused_action_is_answered_rejected_naming_who_and_never_runs(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target, section = await _flushdb_setup(redis_url)
    async with _remediator(_enabled(make_settings, **section)) as bus:
        request = _request("redis.flushdb", "jarvis-redis")
        await bus.publish(request)
        await eventually(lambda: _count_is(redis, request.action_id, 1))
        await bus.publish(ActionRefused(action_id=request.action_id, by="alice", reason="not now"))
        answer = await final_answer(redis, request.action_id)
        assert answer["outcome"] == "rejected"
        assert answer["detail"] == "refused by alice: not now; not run"
        assert answer["escalate"] is False
        # An approval after the refusal finds nothing waiting: nothing runs.
        await bus.publish(_approval(request.action_id, "bob"))
        await bus.publish(request)
        await eventually(lambda: _count_is(redis, request.action_id, 3))
    assert await target.get("cache:x") == b"1"
    await target.aclose()


async def test_no_automatic_action_changes_a_target_in_a_maintenance_window(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target, section = await _flushdb_setup(redis_url)
    settings = _enabled(make_settings, **section).model_copy(deep=True)
    settings.triage.containers["redis"] = "jarvis-redis"  # service redis runs in it
    now = utcnow()
    spec = SilenceSpec(
        matchers=[Matcher(name="service", value="redis")],
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        comment="redis upgrade",
        created_by="alice",
    )
    silence, _ = await SilenceStore(redis).create(spec, now)
    async with _remediator(settings) as bus:
        playbook = _request("redis.flushdb", "jarvis-redis", requested_by="playbook:x")
        operator = _request("redis.flushdb", "jarvis-redis")
        backup = _request("redis.bgsave", "jarvis-redis", requested_by="playbook:x")
        for request in (playbook, operator, backup):
            await bus.publish(request)
        skipped = await final_answer(redis, playbook.action_id)
        assert skipped["outcome"] == "skipped"
        assert skipped["dry_run"] is False
        assert f"silenced by {silence.id}" in skipped["detail"]
        assert "maintenance window" in skipped["detail"]
        # What an operator asks for still goes to approval; a backup still runs.
        await eventually(lambda: _count_is(redis, operator.action_id, 1))
        assert (await answers(redis, operator.action_id))[0]["outcome"] == "awaiting_approval"
        assert (await final_answer(redis, backup.action_id))["outcome"] == "succeeded"
    assert await target.get("cache:x") == b"1"
    await target.aclose()
