"""The remediator's Docker executor against the real engine, with stand-in Jarvis containers."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from services.remediator.docker_engine import DockerEngine
from services.remediator.ports import ActionFailed
from services.remediator.postgres import PostgresOps
from services.remediator.recovery import ordered_restart
from shared.settings import RemediatorPostgresTarget, RemediatorSettings
from tests.integration.remediator_fixtures import (  # noqa: F401 - fixtures
    Containers,
    containers_fixture,
    docker_client_fixture,
    free_port,
    wait_http,
)

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# A stand-in PostgreSQL container for the docker-exec path: pg_isready succeeds only
# once /pg-ready exists (a second after each start), pg_dump prints its argv.
_FAKE_PG = (
    "rm -f /pg-ready; "
    "printf '#!/bin/sh\\n[ -e /pg-ready ]\\n' > /bin/pg_isready; chmod 755 /bin/pg_isready; "
    'printf \'#!/bin/sh\\necho "-- dump args: $*"\\necho "CREATE TABLE t (id int);"\\n\''
    " > /bin/pg_dump; chmod 755 /bin/pg_dump; "
    "(sleep 1; echo > /pg-ready) & exec sleep 100000"
)


@pytest.fixture
def engine() -> DockerEngine:
    return DockerEngine()


async def test_restart_really_restarts_the_container(
    engine: DockerEngine, containers: Containers
) -> None:
    port = free_port()
    box = containers.httpd(port)
    wait_http(f"http://127.0.0.1:{port}/health")
    before = containers.inspect(box.name)["State"]["StartedAt"]

    detail = await engine.restart(box.name, stop_timeout_s=5)

    after = containers.inspect(box.name)["State"]
    assert after["Running"] is True
    assert after["StartedAt"] != before
    assert after["StartedAt"] in detail
    assert wait_http(f"http://127.0.0.1:{port}/health").json() == {"status": "healthy"}


async def test_stop_then_start(engine: DockerEngine, containers: Containers) -> None:
    box = containers.run("exec sleep 100000")
    await engine.stop(box.name, stop_timeout_s=5)
    assert containers.inspect(box.name)["State"]["Running"] is False
    await engine.start(box.name)
    assert containers.inspect(box.name)["State"]["Running"] is True


async def test_recreate_makes_a_new_container_with_the_same_configuration(
    engine: DockerEngine, containers: Containers
) -> None:
    port = free_port()
    box = containers.httpd(port, mem_limit="64m", environment={"JARVIS_MARK": "kept"})
    wait_http(f"http://127.0.0.1:{port}/health")
    old = containers.inspect(box.name)

    detail = await engine.recreate(box.name, stop_timeout_s=5)

    new = containers.inspect(box.name)
    assert new["Id"] != old["Id"]
    assert old["Id"][:12] in detail
    assert new["Id"][:12] in detail
    assert new["Name"] == old["Name"]
    for key in ("Image", "Cmd", "Labels"):
        assert new["Config"][key] == old["Config"][key]
    assert "JARVIS_MARK=kept" in new["Config"]["Env"]
    for key in ("NetworkMode", "Memory", "Init"):
        assert new["HostConfig"][key] == old["HostConfig"][key]
    assert new["State"]["Running"] is True
    assert wait_http(f"http://127.0.0.1:{port}/health").json() == {"status": "healthy"}


async def test_update_limits_as_the_runbook_does(
    engine: DockerEngine, containers: Containers
) -> None:
    box = containers.run("exec sleep 100000", network_mode="none")
    await engine.update_limits(box.name, memory=2 * 1024**3, memory_swap=None, nano_cpus=10**9)
    host = containers.inspect(box.name)["HostConfig"]
    assert host["Memory"] == 2 * 1024**3
    assert host["NanoCpus"] == 1_000_000_000
    # Lowering works too (swap is moved together with memory).
    await engine.update_limits(box.name, memory=256 * 1024**2, memory_swap=None, nano_cpus=None)
    host = containers.inspect(box.name)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
        256 * 1024**2,
        256 * 1024**2,
        1_000_000_000,
    )


async def test_logs_and_stats_are_captured(engine: DockerEngine, containers: Containers) -> None:
    box = containers.run("echo marker-one; echo marker-two >&2; exec sleep 100000")
    for _ in range(50):
        logs = await engine.logs(box.name, since_s=600, tail=100)
        if b"marker-two" in logs:
            break
    assert b"marker-one" in logs
    assert b"marker-two" in logs
    stats = await engine.stats(box.name)
    assert stats.name == box.name
    assert stats.memory_limit_bytes > 0
    assert box.name in stats.line()


async def test_missing_container_is_a_clear_failure(
    engine: DockerEngine, docker_client: docker.DockerClient
) -> None:
    # docker_client: needs an engine that answers, skipped with the reason without one.
    with pytest.raises(ActionFailed, match="not found"):
        await engine.restart("jt5-does-not-exist", stop_timeout_s=1)


async def test_invalid_names_never_reach_the_engine(engine: DockerEngine) -> None:
    with pytest.raises(ValueError, match="not a valid container name"):
        await engine.stop("../containers/x", stop_timeout_s=1)


async def test_exec_passes_argv_without_a_shell(
    engine: DockerEngine, containers: Containers, tmp_path: Path
) -> None:
    box = containers.run("exec sleep 100000", network_mode="none")
    code, out = await engine.exec_to_file(box.name, ["echo", "a;b $(id) `x`"], None, 10)
    assert code == 0
    assert out.strip() == b"a;b $(id) `x`"
    dest = tmp_path / "out.txt"
    code, _ = await engine.exec_to_file(box.name, ["cat", "/proc/self/cmdline"], dest, 10)
    assert code == 0
    assert dest.read_bytes().startswith(b"cat\x00")


async def test_prune_removes_only_what_the_label_selects(
    engine: DockerEngine, containers: Containers
) -> None:
    stopped = containers.run("exit 0", network_mode="none")
    stopped.wait(timeout=10)
    keep = containers.run(
        "exit 0", network_mode="none", labels={"jarvis.test": f"{containers.label}-keep"}
    )
    keep.wait(timeout=10)
    try:
        detail = await engine.system_prune(f"jarvis.test={containers.label}")
        assert "1 containers" in detail
        names = {c.name for c in containers.client.containers.list(all=True)}
        assert stopped.name not in names
        assert keep.name in names
    finally:
        keep.remove(force=True)
    volume = containers.client.volumes.create(labels={"jarvis.test": containers.label})
    detail = await engine.volume_prune(f"jarvis.test={containers.label}")
    assert volume.name in detail
    assert volume.name not in {v.name for v in containers.client.volumes.list()}


async def test_postgres_by_docker_exec_dumps_and_waits(
    engine: DockerEngine, containers: Containers, tmp_path: Path
) -> None:
    name = containers.name("pg")
    containers.run(_FAKE_PG, name=name, network_mode="none")
    settings = RemediatorSettings(postgres_targets={name: RemediatorPostgresTarget()})
    postgres = PostgresOps(settings, engine)

    waited = await postgres.wait_ready(name, timeout_s=20)
    dump = await postgres.backup(name, tmp_path / "dump.sql", timeout_s=20)

    assert waited >= 0
    assert dump.read_text().splitlines()[0] == "-- dump args: -U sutazai -d sutazai"
    assert not list(tmp_path.glob("*.partial"))  # noqa: ASYNC240 - test inspection


async def test_ordered_restart_runs_in_the_runbook_order(
    engine: DockerEngine, containers: Containers
) -> None:
    port = free_port()
    backend = containers.httpd(port, name=containers.name("backend"))
    database = containers.run(_FAKE_PG, name=containers.name("pg"), network_mode="none")
    wait_http(f"http://127.0.0.1:{port}/health")
    db_started_before = containers.inspect(database.name)["State"]["StartedAt"]
    settings = RemediatorSettings(postgres_targets={database.name: RemediatorPostgresTarget()})

    detail = await ordered_restart(
        engine,
        PostgresOps(settings, engine),
        backend=backend.name,
        database=database.name,
        ready_timeout_s=30,
        stop_timeout_s=5,
    )

    b, d = containers.inspect(backend.name)["State"], containers.inspect(database.name)["State"]
    assert d["StartedAt"] != db_started_before
    # stop backend → restart PostgreSQL → (ready) → start backend
    assert b["FinishedAt"] < d["StartedAt"] < b["StartedAt"]
    assert b["Running"]
    assert d["Running"]
    assert "ready after" in detail
    wait_http(f"http://127.0.0.1:{port}/health")


async def test_ordered_restart_starts_the_backend_even_when_the_database_stays_down(
    engine: DockerEngine, containers: Containers
) -> None:
    backend = containers.run("exec sleep 100000", name=containers.name("backend"))
    # pg_isready never succeeds here
    database = containers.run(
        "printf '#!/bin/sh\\nexit 2\\n' > /bin/pg_isready; chmod 755 /bin/pg_isready; "
        "exec sleep 100000",
        name=containers.name("pg"),
        network_mode="none",
    )
    settings = RemediatorSettings(postgres_targets={database.name: RemediatorPostgresTarget()})
    with pytest.raises(ActionFailed, match="not ready within 3 s") as failure:
        await ordered_restart(
            engine,
            PostgresOps(settings, engine),
            backend=backend.name,
            database=database.name,
            ready_timeout_s=3,
            stop_timeout_s=5,
        )
    assert f"started {backend.name}" in str(failure.value)
    assert containers.inspect(backend.name)["State"]["Running"] is True


async def test_stats_without_a_target_cover_every_jarvis_container(
    engine: DockerEngine, containers: Containers, tmp_path: Path
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import Any, cast

    from services.remediator.executor import Executor, Ports
    from shared.actions import ActionName
    from shared.events import ActionRequested
    from shared.settings import load_settings

    box = containers.run("exec sleep 100000")
    settings = load_settings(
        None,
        data_dir=tmp_path,
        remediator={"diagnostics_containers": [box.name, "jt5-not-there"]},
    )
    # Only the engine is used by docker.stats; the other ports are never touched.
    unused = cast(Any, SimpleNamespace())
    executor = Executor(settings, Ports(engine, unused, unused, unused, unused, unused))
    request = ActionRequested(action="docker.stats", target="")
    result = await executor.run(
        request, ActionName.DOCKER_STATS, None, (), datetime.now(UTC), timeout_s=30
    )
    line_of_box, missing = result.detail.split("; ")
    assert box.name in line_of_box
    assert missing.startswith("jt5-not-there:")
    assert "not found" in missing
