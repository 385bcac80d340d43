"""Docker probes against the real engine, with containers of a locally built busybox image
(no network: `network_mode=none`)."""

from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker.errors import DockerException, ImageNotFound
from docker.models.containers import Container

from services.detector.probes import ProbeResult, Schedule
from services.detector.probes_docker import (
    ContainerLimits,
    DockerProbe,
    LogErrorsProbe,
    client_factory,
)
from tests.conftest import require
from tests.integration.detector_stubs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.docker]

IMAGE = "jarvis-test/busybox"
SCHEDULE = Schedule(interval_s=10, timeout_s=8)
RELAXED = ContainerLimits(cpu_pct=80, memory_pct=80, max_restarts=3, restart_window_s=600)


def _busybox_tar() -> bytes:
    """A root filesystem with just /bin/busybox and the applets the tests use."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "sleep", "cat", "echo"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        require(False, f"no Docker engine: {exc}")
        raise
    try:
        client.images.get(IMAGE)
    except ImageNotFound:
        client.api.import_image_from_data(_busybox_tar(), repository=IMAGE)
    yield client
    client.close()


@pytest.fixture
def start(engine: docker.DockerClient) -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def run(command: str, **options: Any) -> Container:
        container = engine.containers.run(
            IMAGE,
            ["sh", "-c", command],
            name=f"jarvis-detector-test-{uuid.uuid4().hex[:10]}",
            detach=True,
            network_mode="none",
            **options,
        )
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(DockerException):
            container.remove(force=True)


def _by_check(results: list[ProbeResult]) -> dict[str, ProbeResult]:
    return {r.check: r for r in results}


def _wait(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


async def test_running_container_with_cpu_and_memory(start: Callable[..., Container]) -> None:
    # A busy loop capped at 5 % of a core: measurable, and cheap for the shared machine.
    busy = start("while :; do :; done", nano_cpus=50_000_000, mem_limit="64m")
    probe = DockerProbe(client_factory(None, 8), [(busy.name, "backend")], RELAXED, SCHEDULE)
    try:
        results = (await probe.run()).results
        engine_ok, rest = results[0], _by_check(results[1:])
        assert (engine_ok.service, engine_ok.check, engine_ok.ok) == ("docker", "engine", True)
        assert rest["container-state"].ok
        assert rest["container-state"].labels == {"container": busy.name}
        assert rest["container-state"].service == "backend"
        assert rest["container-restarts"].ok
        assert "container-health" not in rest  # no healthcheck configured
        cpu, memory = rest["container-cpu"], rest["container-memory"]
        assert cpu.ok
        assert memory.ok
        assert cpu.value is not None
        assert 0.5 < cpu.value < 20
        assert memory.value is not None
        assert 0 < memory.value < 80
        strict = ContainerLimits(
            cpu_pct=0.5, memory_pct=0.0001, max_restarts=3, restart_window_s=600
        )
        tight = DockerProbe(client_factory(None, 8), [(busy.name, "backend")], strict, SCHEDULE)
        rest = _by_check((await tight.run()).results[1:])
        assert not rest["container-cpu"].ok
        assert "threshold 0.5%" in rest["container-cpu"].detail
        assert not rest["container-memory"].ok
        await tight.close()
    finally:
        await probe.close()


async def test_stopped_missing_and_unhealthy_containers(
    engine: docker.DockerClient, start: Callable[..., Container]
) -> None:
    stopped = start("exit 3")
    sick = start(
        "sleep 60",
        healthcheck={
            "test": ["CMD-SHELL", "echo db down; exit 1"],
            "interval": 300_000_000,
            "timeout": 1_000_000_000,
            "retries": 1,
        },
    )
    _wait(lambda: engine.containers.get(stopped.id).status == "exited")
    _wait(lambda: engine.api.inspect_container(sick.id)["State"]["Health"]["Status"] == "unhealthy")
    missing = f"jarvis-detector-missing-{uuid.uuid4().hex[:8]}"
    targets = [(stopped.name, "postgres"), (sick.name, "ollama"), (missing, "redis")]
    probe = DockerProbe(client_factory(None, 8), targets, RELAXED, SCHEDULE)
    try:
        results = (await probe.run()).results
    finally:
        await probe.close()
    by = {(r.service, r.check): r for r in results}
    state = by[("postgres", "container-state")]
    assert not state.ok
    assert "status exited (exit code 3)" in state.detail
    assert ("postgres", "container-cpu") not in by  # no stats of a stopped container
    health = by[("ollama", "container-health")]
    assert not health.ok
    assert "health unhealthy: db down" in health.detail
    assert by[("ollama", "container-state")].ok
    assert not by[("redis", "container-state")].ok
    assert "container not found" in by[("redis", "container-state")].detail


async def test_restart_loop_is_detected(
    engine: docker.DockerClient, start: Callable[..., Container]
) -> None:
    crashing = start("sleep 0.3; exit 1", restart_policy={"Name": "always"})
    limits = ContainerLimits(
        cpu_pct=80, memory_pct=80, max_restarts=2, restart_window_s=600, stats=False
    )
    probe = DockerProbe(client_factory(None, 8), [(crashing.name, "backend")], limits, SCHEDULE)
    try:
        first = _by_check((await probe.run()).results[1:])
        assert first["container-restarts"].ok
        baseline = engine.api.inspect_container(crashing.id)["RestartCount"]
        _wait(lambda: engine.api.inspect_container(crashing.id)["RestartCount"] >= baseline + 3)
        later = _by_check((await probe.run()).results[1:])
    finally:
        await probe.close()
    restarts = later["container-restarts"]
    assert not restarts.ok
    assert restarts.value is not None
    assert restarts.value >= 2
    assert "restarts in the last 600s" in restarts.detail


async def test_error_lines_in_logs(start: Callable[..., Container]) -> None:
    noisy = start(
        "echo 'ERROR: db timeout'; echo fine; echo 'fatal: out of memory' >&2; "
        "echo 'critical: disk'; sleep 60"
    )
    _wait(lambda: b"critical" in noisy.logs())
    factory = client_factory(None, 8)
    over = LogErrorsProbe(
        factory, [(noisy.name, "backend")], r"(?i)critical|fatal|error", 600, 3, SCHEDULE
    )
    under = LogErrorsProbe(
        factory, [(noisy.name, "backend")], r"(?i)critical|fatal|error", 600, 4, SCHEDULE
    )
    try:
        [_, result] = (await over.run()).results
        assert (result.service, result.check, result.ok, result.value) == (
            "backend",
            "log-errors",
            False,
            3,
        )
        # stdout and stderr are merged without a strict order: the last line is one of them.
        assert "last: critical: disk" in result.detail or "last: fatal" in result.detail
        [_, result] = (await under.run()).results
        assert result.ok
    finally:
        await over.close()
        await under.close()


async def test_engine_unreachable() -> None:
    factory = client_factory(f"tcp://127.0.0.1:{free_port()}", 2)
    probe = DockerProbe(factory, [("backend", "backend")], RELAXED, SCHEDULE)
    try:
        [result] = (await probe.run()).results
    finally:
        await probe.close()
    assert (result.service, result.check, result.ok) == ("docker", "engine", False)
    assert result.detail.startswith("Docker engine:")
