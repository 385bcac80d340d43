"""The remediator's pure decisions: guardrails, parameters, ineffective fixes, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.remediator.guardrails import (
    FixRecord,
    VerdictKind,
    apply_blocks,
    attempt_limit_for,
    decide,
    effective_timeout,
    ineffective_reason,
    target_of_alert,
)
from services.remediator.params import InvalidParams, UpdateLimitsParams, parse_bytes, parse_params
from services.remediator.ports import ActionFailed, ContainerStats
from services.remediator.recovery import ordered_restart
from shared.actions import ActionName
from shared.events import ActionRequested, AlertRaised, AlertStatus
from shared.settings import RemediatorSettings

pytestmark = pytest.mark.unit

ON = RemediatorSettings(enabled=True, enabled_actions=["*"])


def _req(action: str, target: str = "backend", **fields: Any) -> ActionRequested:
    return ActionRequested(action=action, target=target, **fields)


def test_off_by_default_and_per_action() -> None:
    assert decide(_req("docker.restart"), RemediatorSettings()).kind is VerdictKind.DRY_RUN
    only_stats = RemediatorSettings(enabled=True, enabled_actions=["docker.stats"])
    assert decide(_req("docker.restart"), only_stats).kind is VerdictKind.DRY_RUN
    assert decide(_req("docker.stats"), only_stats).kind is VerdictKind.EXECUTE


def test_rejections_name_the_reason() -> None:
    s = RemediatorSettings(
        enabled=True, enabled_actions=["*"], allowed_actions=["docker.restart", "ollama.pull"]
    )
    cases = [
        (_req("docker.explode"), "not in the vocabulary"),
        (_req("docker.stop"), "not on the allowlist"),
        (_req("docker.restart", "sutazai-grafana;rm"), "not a valid name"),
        (_req("docker.restart", "elsewhere"), "target: elsewhere is not on the allowlist"),
        (_req("ollama.pull", "", params={"model": "../x y"}), "params.model"),
    ]
    for request, reason in cases:
        verdict = decide(request, s)
        assert verdict.kind is VerdictKind.REJECT
        assert reason in verdict.reason


def test_rejected_even_in_dry_run_when_off_the_allowlist() -> None:
    verdict = decide(_req("docker.restart", "unknown-box"), RemediatorSettings())
    assert verdict.kind is VerdictKind.REJECT


def test_reading_evidence_needs_no_allowlisted_target() -> None:
    # A playbook for an unknown service still gathers diagnostics; changing it is refused.
    for action in ("diagnostics.collect", "docker.logs", "docker.stats"):
        assert decide(_req(action, "mystery-box"), ON).kind is VerdictKind.EXECUTE
    assert decide(_req("docker.restart", "mystery-box"), ON).kind is VerdictKind.REJECT
    # `docker stats --no-stream` of the runbook: no target means the whole stack.
    verdict = decide(_req("docker.stats", ""), ON)
    assert (verdict.kind, verdict.targets) == (VerdictKind.EXECUTE, ())


def test_dangerous_actions_wait_for_approval() -> None:
    for request in (_req("redis.flushdb", "sutazai-redis"), _req("docker.restart", dangerous=True)):
        verdict = decide(request, ON)
        assert verdict.kind is VerdictKind.AWAIT_APPROVAL
        assert request.action_id in verdict.reason
        assert decide(request, ON, approved=True).kind is VerdictKind.EXECUTE
    assert decide(_req("docker.system_prune", ""), ON).kind is VerdictKind.AWAIT_APPROVAL
    assert decide(_req("docker.system_prune", "backend"), ON).kind is VerdictKind.REJECT


def test_blocks_stop_changes_but_not_reads() -> None:
    blocked = {"backend": "ineffective"}
    restart = apply_blocks(decide(_req("docker.restart"), ON), blocked)
    assert restart.kind is VerdictKind.REJECT
    assert restart.escalate is True
    assert apply_blocks(decide(_req("docker.logs"), ON), blocked).kind is VerdictKind.EXECUTE
    ordered = apply_blocks(decide(_req("recovery.ordered_restart", ""), ON), blocked)
    assert ordered.kind is VerdictKind.REJECT
    assert ordered.targets == ("backend", "sutazai-postgres")


def test_limits_and_timeouts() -> None:
    s = RemediatorSettings(
        attempt_limits={"docker.restart": {"max_attempts": 1, "window_s": 60}},
        action_timeouts_s={"docker.restart": 30},
        max_action_timeout_s=300,
    )
    limit = attempt_limit_for(ActionName.DOCKER_RESTART, s)
    assert limit is not None
    assert (limit.max_attempts, limit.window_s) == (1, 60)
    assert attempt_limit_for(ActionName.DOCKER_RECREATE, s) == s.attempt_limit
    assert attempt_limit_for(ActionName.POSTGRES_BACKUP, s) is None
    assert (
        effective_timeout(_req("docker.restart", timeout_s=120), ActionName.DOCKER_RESTART, s) == 30
    )
    assert effective_timeout(_req("docker.stats", timeout_s=900), ActionName.DOCKER_STATS, s) == 300


def test_params() -> None:
    assert parse_bytes("2g") == 2 * 1024**3
    assert parse_bytes("512m") == 512 * 1024**2
    limits = parse_params(ActionName.DOCKER_UPDATE_LIMITS, {"memory": "2g", "cpus": 1.0})
    assert isinstance(limits, UpdateLimitsParams)
    assert (limits.memory_bytes, limits.swap_bytes, limits.nano_cpus) == (2**31, 2**31, 10**9)
    with pytest.raises(InvalidParams, match=r"params\.cpus"):
        parse_params(ActionName.DOCKER_UPDATE_LIMITS, {"cpus": -1})
    with pytest.raises(InvalidParams, match="memory and/or cpus"):
        parse_params(ActionName.DOCKER_UPDATE_LIMITS, {})
    with pytest.raises(InvalidParams, match=r"params\.containers\.0"):
        parse_params(ActionName.DIAGNOSTICS_COLLECT, {"containers": ["/etc/passwd"]})
    with pytest.raises(InvalidParams, match=r"params\.label"):
        parse_params(ActionName.DOCKER_VOLUME_PRUNE, {"label": "a b"})


def test_ineffective_fix_detection() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    s = RemediatorSettings(ineffective_window_s=1800, ineffective_grace_s=10)
    alert = AlertRaised(service="backend", check="health")
    fix = FixRecord("a1", "docker.restart", "backend", now, frozenset({alert.fingerprint}))
    assert ineffective_reason(fix, alert, now + timedelta(seconds=5), s) is None  # in flight
    reason = ineffective_reason(fix, alert, now + timedelta(seconds=60), s)
    assert reason is not None
    assert "fired again 60 s after docker.restart of backend" in reason
    assert ineffective_reason(fix, alert, now + timedelta(hours=1), s) is None  # window over
    other = AlertRaised(service="backend", check="memory")
    assert ineffective_reason(fix, other, now + timedelta(seconds=60), s) is None
    resolved = alert.model_copy(update={"status": AlertStatus.RESOLVED})
    assert ineffective_reason(fix, resolved, now + timedelta(seconds=60), s) is None
    unknown = FixRecord("a2", "docker.restart", "backend", now, frozenset())
    assert ineffective_reason(unknown, other, now + timedelta(seconds=60), s) is not None


def test_alerts_map_to_containers() -> None:
    s = RemediatorSettings()
    assert target_of_alert(AlertRaised(service="ollama"), s) == "sutazai-ollama"
    labelled = AlertRaised(service="x", labels={"container": "sutazai-redis"})
    assert target_of_alert(labelled, s) == "sutazai-redis"
    assert target_of_alert(AlertRaised(service="unknown-thing"), s) is None


class _Engine:
    """Records calls; `fail_restart` makes the database restart fail."""

    def __init__(self, fail_restart: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_restart = fail_restart

    async def stop(self, name: str, stop_timeout_s: int) -> str:
        self.calls.append(f"stop {name}")
        return f"stopped {name}"

    async def restart(self, name: str, stop_timeout_s: int) -> str:
        self.calls.append(f"restart {name}")
        if self.fail_restart:
            raise ActionFailed(f"container {name} not found")
        return f"restarted {name}"

    async def start(self, name: str) -> str:
        self.calls.append(f"start {name}")
        return f"started {name}"

    def __getattr__(self, name: str) -> Any:  # the rest of ContainerEngine is unused here
        raise AssertionError(name)


class _Postgres:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine

    async def wait_ready(self, target: str, timeout_s: float) -> float:
        self.engine.calls.append(f"wait {target}")
        return 1.5

    async def backup(self, target: str, dest: Path, timeout_s: float) -> Path:
        raise AssertionError

    async def connections(self, target: str) -> int:
        raise AssertionError

    async def select_one(self, target: str) -> str:
        raise AssertionError


async def test_ordered_restart_order_and_backend_always_restarted() -> None:
    engine = _Engine()
    detail = await ordered_restart(
        engine, _Postgres(engine), backend="b", database="d", ready_timeout_s=60, stop_timeout_s=1
    )  # type: ignore[arg-type]
    assert engine.calls == ["stop b", "restart d", "wait d", "start b"]
    assert "d ready after 1.5 s" in detail

    broken = _Engine(fail_restart=True)
    with pytest.raises(ActionFailed, match="not found") as failure:
        await ordered_restart(
            broken,
            _Postgres(broken),
            backend="b",
            database="d",
            ready_timeout_s=60,
            stop_timeout_s=1,
        )  # type: ignore[arg-type]
    assert broken.calls == ["stop b", "restart d", "start b"]
    assert "started b" in str(failure.value)


def test_stats_line() -> None:
    line = ContainerStats("sutazai-ollama", 85.0, 2**30, 2**31).line()
    assert line == "sutazai-ollama: CPU 85.0 %, memory 1024.0 MiB / 2048.0 MiB (50.0 %)"


@pytest.mark.parametrize("action", ["docker.stop", "docker.recreate"])
def test_stopping_and_deleting_wait_for_an_operator_by_default(action: str) -> None:
    """Issue 18, finding 5: these ran on any allowlisted container without approval."""
    params = {"memory": "2g"} if action == "docker.update_limits" else {}
    target = "" if action == "recovery.ordered_restart" else "backend"
    verdict = decide(_req(action, target, params=params), ON)
    assert verdict.kind is VerdictKind.AWAIT_APPROVAL, verdict.reason
    assert decide(_req(action, target, params=params), ON, approved=True).kind is (
        VerdictKind.EXECUTE
    )


@pytest.mark.parametrize("action", ["docker.update_limits", "recovery.ordered_restart"])
def test_the_runbooks_automatic_containment_needs_no_approval_by_default(action: str) -> None:
    """Phase 3 runs them by itself and every container keeps running: a P0 database outage
    must not wait for a human (issue 14). An operator may still require approval."""
    params = {"memory": "2g"} if action == "docker.update_limits" else {}
    target = "" if action == "recovery.ordered_restart" else "backend"
    assert decide(_req(action, target, params=params), ON).kind is VerdictKind.EXECUTE
    strict = RemediatorSettings(enabled=True, enabled_actions=["*"], approval_required=[action])
    verdict = decide(_req(action, target, params=params), strict)
    assert verdict.kind is VerdictKind.AWAIT_APPROVAL


def test_the_approval_policy_is_configurable_but_keeps_the_runbooks_destructive_ones() -> None:
    assert decide(_req("docker.restart"), ON).kind is VerdictKind.EXECUTE  # a single restart
    none = RemediatorSettings(enabled=True, enabled_actions=["*"], approval_required=[])
    assert decide(_req("docker.stop"), none).kind is VerdictKind.EXECUTE
    assert decide(_req("redis.flushdb", ""), none).kind is VerdictKind.AWAIT_APPROVAL
    more = RemediatorSettings(
        enabled=True, enabled_actions=["*"], approval_required=["docker.restart"]
    )
    assert decide(_req("docker.restart"), more).kind is VerdictKind.AWAIT_APPROVAL
    with pytest.raises(ValueError, match="unknown action"):
        RemediatorSettings(approval_required=["docker.explode"])
