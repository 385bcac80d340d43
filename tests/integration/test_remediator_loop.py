"""The remediator closes the loop (issue 14): after a restart it waits until the container
serves again, verification retries within its deadline, a stopped container has no
statistics, a step's condition is checked when it would run, and an approval cannot
outlive its incident. Real Docker engine, real Redis, real HTTP."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.remediator.docker_engine import DockerEngine
from services.remediator.main import build
from services.remediator.ports import ActionFailed
from shared.approvals import sign_approval
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import (
    ActionRequested,
    AlertRaised,
    AlertStatus,
    DrillStarted,
    IncidentResolved,
    utcnow,
)
from shared.keys import Signer
from shared.settings import Settings
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


def _request(action: str, target: str = "", **fields: Any) -> ActionRequested:
    fields.setdefault("incident_id", str(uuid.uuid4()))
    return ActionRequested(action=action, target=target, requested_by="test", **fields)


@contextlib.asynccontextmanager
async def _remediator(
    settings: Settings, clock: ManualClock | None = None
) -> AsyncIterator[EventBus]:
    async with running(settings, [build], clock=clock) as (_client, runtime):
        yield runtime.bus("test")


APPROVAL_KEY = "approval-key-of-the-loop-tests"


def _enabled(make_settings: Callable[..., Settings], **top: Any) -> Settings:
    section = top.pop("remediator", {})
    base: dict[str, Any] = {"enabled": True, "enabled_actions": ["*"], "tick_s": 0.05}
    return make_settings(remediator={**base, **section}, **top)


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _listening_after(port: int, delay_s: float) -> Iterator[None]:
    """A backend that starts listening on `port` only `delay_s` after it is started."""
    servers: list[ThreadingHTTPServer] = []

    def serve() -> None:
        time.sleep(delay_s)
        server = ThreadingHTTPServer(("127.0.0.1", port), _Healthy)
        servers.append(server)
        server.serve_forever()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.docker
async def test_restart_returns_once_the_backend_listens_again(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """`docker kill backend` drill: the backend takes 3 s to listen after each start; the
    restart answers only when it does, so verification right after it passes."""
    port = free_port()
    name = containers.name("backend")
    containers.run(
        'sleep 3; echo \'{"status": "healthy"}\' > /health; '
        f"exec httpd -f -p 127.0.0.1:{port} -h /",
        name=name,
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    settings = _enabled(
        make_settings,
        backend_url=f"http://127.0.0.1:{port}",
        remediator={"allowed_targets": [name], "backend_container": name},
    )
    async with _remediator(settings) as bus:
        request = _request("docker.restart", name)
        await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{port}/health")
    assert answer["outcome"] == "succeeded", answer["detail"]
    assert response.status_code == 200
    assert "ready after" in answer["detail"]


@pytest.mark.docker
async def test_restart_waits_for_the_containers_health_check(
    containers: Containers,
) -> None:
    port = free_port()
    box = containers.run(
        f"sleep 2; echo ok > /health; exec httpd -f -p 127.0.0.1:{port} -h /",
        healthcheck={
            "test": [
                "CMD",
                "/bin/busybox",
                "wget",
                "-q",
                "-O",
                "/dev/null",
                f"http://127.0.0.1:{port}/health",
            ],
            "interval": 300_000_000,
            "timeout": 1_000_000_000,
            "retries": 100,
        },
    )
    engine = DockerEngine()
    await engine.restart(box.name, stop_timeout_s=2)
    began = time.monotonic()
    await engine.wait_healthy(box.name, timeout_s=30)
    waited = time.monotonic() - began
    assert containers.inspect(box.name)["State"]["Health"]["Status"] == "healthy"
    assert waited >= 1.5
    async with httpx.AsyncClient(timeout=2) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200


@pytest.mark.docker
async def test_stats_of_a_stopped_container_is_a_failure_not_zero(
    containers: Containers,
) -> None:
    box = containers.run("exec sleep 100000", network_mode="none")
    engine = DockerEngine()
    await engine.stop(box.name, stop_timeout_s=1)
    with pytest.raises(ActionFailed, match="not running"):
        await engine.stats(box.name)


async def test_verification_retries_until_the_stackanswers(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """The backend listens 3 s after verification started: verify.all retries within its
    deadline instead of failing at once."""
    port = free_port()
    settings = _enabled(make_settings, backend_url=f"http://127.0.0.1:{port}")
    with _listening_after(port, 3):
        async with _remediator(settings) as bus:
            request = _request("verify.all", params={"checks": ["backend_health"]})
            await bus.publish(request)
            answer = await final_answer(redis, request.action_id)
    assert answer["outcome"] == "succeeded", answer["detail"]
    assert "attempt" in answer["detail"]


async def test_verification_still_fails_after_its_deadline(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = _enabled(make_settings, backend_url=f"http://127.0.0.1:{free_port()}")
    async with _remediator(settings) as bus:
        request = _request("verify.all", params={"checks": ["backend_health"], "deadline_s": 2})
        await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
    assert answer["outcome"] == "failed"
    assert "verification failed" in answer["detail"]


@pytest.mark.docker
async def test_a_step_whose_condition_is_unmet_is_skipped_with_the_reason(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """`docker stop sutazai-postgres` drill: no pg_dump into a stopped container."""
    box = containers.run("exec sleep 100000", network_mode="none")
    await DockerEngine().stop(box.name, stop_timeout_s=1)
    settings = _enabled(
        make_settings,
        remediator={"allowed_targets": [box.name], "postgres_targets": {box.name: {}}},
    )
    async with _remediator(settings) as bus:
        request = _request(
            "postgres.backup", box.name, when={"container": box.name, "state": "running"}
        )
        await bus.publish(request)
        answer = await final_answer(redis, request.action_id)
    assert (answer["outcome"], answer["dry_run"]) == ("skipped", False)
    assert answer["detail"].startswith(f"skipped: {box.name} is not running")


async def test_a_pending_approval_expires_with_its_incident_and_a_later_one_runs_nothing(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    target = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/9")
    await target.set("cache:x", "1")
    settings = _enabled(
        make_settings,
        remediator={
            "allowed_targets": ["jarvis-redis"],
            "redis_targets": {"jarvis-redis": {"url": redis_url.rsplit("/", 1)[0] + "/9"}},
        },
        approval_key=APPROVAL_KEY,
    )
    async with _remediator(settings) as bus:
        request = _request("redis.flushdb", "jarvis-redis")
        await bus.publish(request)
        await eventually(lambda: answers(redis, request.action_id))
        await bus.publish(
            IncidentResolved(incident_id=request.incident_id, by="triage", automatic=True)
        )
        answer = await final_answer(redis, request.action_id)
        # Signed as the recorder API signs: only the expiry keeps it from running.
        late = sign_approval(Signer(APPROVAL_KEY), action_id=request.action_id, approver="late")
        await bus.publish(late)
        await bus.publish(request)  # a redelivery republishes the same answer, runs nothing
        await eventually(lambda: _count(redis, request.action_id, 3))
    assert (answer["outcome"], answer["dry_run"]) == ("skipped", False)
    assert answer["detail"].startswith("expired: incident")
    assert "not run" in answer["detail"]
    assert await target.get("cache:x") == b"1"
    assert [a["outcome"] for a in await answers(redis, request.action_id)].count("succeeded") == 0
    await target.aclose()


async def _count(redis: Redis, action_id: str, n: int) -> bool:
    return len(await answers(redis, action_id)) >= n


async def _ineffective(redis: Redis) -> list[dict[str, Any]]:
    return [
        c
        for c in await read_stream(redis, ACTIONS_COMPLETED.key)
        if "ineffective remediation" in c["detail"]
    ]


@pytest.mark.docker
async def test_acting_on_a_target_again_supersedes_its_last_fix(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """The postgres-down drill after the backend-down one: the ordered restart stops the
    backend itself; the alert that causes is not proof the earlier restart failed."""
    box = containers.run("exec sleep 100000", network_mode="none")
    clock = ManualClock()
    # docker.stop stands for any later action on the target: no approval in the way here.
    remediator = {"allowed_targets": [box.name], "approval_required": []}
    settings = _enabled(make_settings, remediator=remediator)
    alert = AlertRaised(service="backend", check="health", labels={"container": box.name})
    async with _remediator(settings, clock) as bus:
        await bus.publish(alert)
        await eventually(lambda: redis.hlen(f"jarvis:remediator:firing:{box.name}"))
        first = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
        await bus.publish(first)
        assert (await final_answer(redis, first.action_id))["outcome"] == "succeeded"
        clock.advance(60)
        await bus.publish(
            alert.model_copy(update={"event_id": str(uuid.uuid4()), "status": AlertStatus.RESOLVED})
        )
        stop = _request("docker.stop", box.name, params={"stop_timeout_s": 1})
        await bus.publish(stop)
        assert (await final_answer(redis, stop.action_id))["outcome"] == "succeeded"
        await bus.publish(alert.model_copy(update={"event_id": str(uuid.uuid4())}))
        probe = _request("docker.start", box.name)
        await bus.publish(probe)
        started = await final_answer(redis, probe.action_id)
    assert started["outcome"] == "succeeded", started["detail"]
    assert await _ineffective(redis) == []


@pytest.mark.docker
async def test_a_playbook_step_on_a_target_without_alerts_records_no_fix(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """Ollama limited by a host-CPU incident's playbook: a later Ollama alert is news."""
    box = containers.run("exec sleep 100000", network_mode="none")
    clock = ManualClock()
    settings = _enabled(make_settings, remediator={"allowed_targets": [box.name]})
    async with _remediator(settings, clock) as bus:
        limit = _request(
            "docker.update_limits",
            box.name,
            params={"memory": "64m"},
            playbook="high_resource_usage",
            step=4,
        )
        await bus.publish(limit)
        assert (await final_answer(redis, limit.action_id))["outcome"] == "succeeded"
        clock.advance(60)
        alert = AlertRaised(service="ollama", check="models", labels={"container": box.name})
        await bus.publish(alert)
        await eventually(lambda: redis.hlen(f"jarvis:remediator:firing:{box.name}"))
        after = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
        await bus.publish(after)
        answer = await final_answer(redis, after.action_id)
    assert answer["outcome"] == "succeeded", answer["detail"]
    assert await _ineffective(redis) == []


@pytest.mark.docker
async def test_a_drill_on_a_target_is_not_taken_for_an_ineffective_fix(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """ollama-down, then memory-pressure 30 s later: the second fault is deliberate."""
    box = containers.run("exec sleep 100000", network_mode="none")
    clock = ManualClock()
    settings = _enabled(make_settings, remediator={"allowed_targets": [box.name]})
    alert = AlertRaised(service="ollama", check="api", labels={"container": box.name})
    async with _remediator(settings, clock) as bus:
        await bus.publish(alert)
        await eventually(lambda: redis.hlen(f"jarvis:remediator:firing:{box.name}"))
        fix = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
        await bus.publish(fix)
        assert (await final_answer(redis, fix.action_id))["outcome"] == "succeeded"
        clock.advance(30)
        await bus.publish(
            DrillStarted(
                drill_id=str(uuid.uuid4()),
                scenario="memory-pressure",
                service="ollama",
                target=box.name,
                fault="memory held",
                injected_at=utcnow(),
            )
        )
        await eventually(lambda: _fix_gone(redis, box.name))
        await bus.publish(alert.model_copy(update={"event_id": str(uuid.uuid4())}))
        again = _request("docker.restart", box.name, params={"stop_timeout_s": 1})
        await bus.publish(again)
        answer = await final_answer(redis, again.action_id)
    assert answer["outcome"] == "succeeded", answer["detail"]
    assert await _ineffective(redis) == []


async def _fix_gone(redis: Redis, target: str) -> bool:
    return not await redis.exists(f"jarvis:remediator:fix:{target}")


@pytest.mark.docker
async def test_limits_already_in_place_change_nothing_and_use_no_attempt(
    redis: Redis, make_settings: Callable[..., Settings], containers: Containers
) -> None:
    """A busy host's repeated high-resource incidents each ask to limit Ollama: only the
    first changes anything, and the memory-pressure fix still has its attempts."""
    box = containers.run("exec sleep 100000", network_mode="none")
    settings = _enabled(
        make_settings,
        remediator={
            "allowed_targets": [box.name],
            "attempt_limits": {"docker.update_limits": {"max_attempts": 1, "window_s": 1800}},
        },
    )
    outcomes = []
    async with _remediator(settings) as bus:
        for memory in ("64m", "64m", "96m"):
            request = _request("docker.update_limits", box.name, params={"memory": memory})
            await bus.publish(request)
            outcomes.append(await final_answer(redis, request.action_id))
    assert [a["outcome"] for a in outcomes] == ["succeeded", "succeeded", "rejected"]
    assert "nothing changed" in outcomes[1]["detail"]
    assert "attempt limit reached: 1 runs" in outcomes[2]["detail"]
