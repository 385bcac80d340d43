"""The Docker engine through the docker SDK (the engine's API, never the `docker` CLI).

The SDK is synchronous: every call runs in a worker thread. Container names reach the
engine's API as path components only after `valid_container_name`; nothing is ever run
through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
from docker.errors import DockerException, NotFound

from services.remediator.artifacts import private_file
from services.remediator.params import valid_container_name
from services.remediator.ports import ActionFailed, ContainerStats

__all__ = ["DockerEngine"]

T = TypeVar("T")

# Fields of `docker inspect`'s Config that `POST /containers/create` takes back unchanged.
_CREATE_FIELDS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)


class DockerEngine:
    """`ContainerEngine` over the local engine (DOCKER_HOST or the socket)."""

    def __init__(self, base_url: str | None = None, api_timeout_s: int = 120) -> None:
        self._base_url = base_url
        self._timeout = api_timeout_s
        self._client: docker.DockerClient | None = None

    def _docker(self) -> docker.DockerClient:
        # Connect lazily: nothing touches the engine at import or build time.
        if self._client is None:
            if self._base_url:
                self._client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
            else:
                self._client = docker.from_env(timeout=self._timeout)
        return self._client

    async def _run(self, name: str | None, call: Callable[[], T]) -> T:
        if name is not None:
            valid_container_name(name)
        try:
            return await asyncio.to_thread(call)
        except NotFound as exc:
            raise ActionFailed(f"container {name} not found") from exc
        except DockerException as exc:
            raise ActionFailed(f"docker: {_explain(exc)}") from exc

    def _inspect(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self._docker().api.inspect_container(name)
        return info

    async def inspect(self, name: str) -> dict[str, Any]:
        return await self._run(name, lambda: self._inspect(name))

    async def restart(self, name: str, stop_timeout_s: int) -> str:
        def call() -> str:
            before = self._inspect(name)["State"]["StartedAt"]
            self._docker().api.restart(name, timeout=stop_timeout_s)
            state = self._inspect(name)["State"]
            if not state["Running"] or state["StartedAt"] == before:
                raise ActionFailed(f"{name} did not come back up: {state['Status']}")
            return f"restarted {name} (started at {state['StartedAt']})"

        return await self._run(name, call)

    async def stop(self, name: str, stop_timeout_s: int) -> str:
        def call() -> str:
            self._docker().api.stop(name, timeout=stop_timeout_s)
            return f"stopped {name} ({self._inspect(name)['State']['Status']})"

        return await self._run(name, call)

    async def start(self, name: str) -> str:
        def call() -> str:
            self._docker().api.start(name)
            state = self._inspect(name)["State"]
            if not state["Running"]:
                raise ActionFailed(f"{name} did not start: {state['Status']}")
            return f"started {name} (started at {state['StartedAt']})"

        return await self._run(name, call)

    async def recreate(self, name: str, stop_timeout_s: int) -> str:
        """stop, remove, create again with the same configuration, start
        (what `docker-compose up -d` does for one service whose container is gone)."""

        def call() -> str:
            api = self._docker().api
            old = self._inspect(name)
            config = _create_config(old)
            api.stop(name, timeout=stop_timeout_s)
            with contextlib.suppress(NotFound):  # --rm containers are gone once stopped
                api.remove_container(name)
            created = api.create_container_from_config(config, name=name)
            api.start(created["Id"])
            state = self._inspect(name)["State"]
            if not state["Running"]:
                raise ActionFailed(f"{name} was recreated but did not start: {state['Status']}")
            return f"recreated {name}: {old['Id'][:12]} → {created['Id'][:12]}"

        return await self._run(name, call)

    async def update_limits(
        self, name: str, memory: int | None, memory_swap: int | None, nano_cpus: int | None
    ) -> str:
        def call() -> str:
            body: dict[str, int] = {}
            if memory is not None:
                body["Memory"] = memory
                body["MemorySwap"] = memory_swap if memory_swap is not None else memory
            if nano_cpus is not None:
                body["NanoCpus"] = nano_cpus
            api = self._docker().api
            # The SDK's update_container has no NanoCpus (what `docker update --cpus` sets),
            # so the engine's documented endpoint is called through the SDK's session.
            url = f"{api.base_url}/v{api.api_version}/containers/{name}/update"
            response = api.post(url, json=body, timeout=self._timeout)
            if response.status_code == 404:
                raise NotFound(f"container {name}")
            if response.status_code >= 400:
                message = response.json().get("message", response.text)
                raise ActionFailed(f"docker update {name}: {message}")
            host = self._inspect(name)["HostConfig"]
            return (
                f"limits of {name}: memory {host['Memory']} B, swap {host['MemorySwap']} B, "
                f"cpus {host['NanoCpus'] / 1e9:g}"
            )

        return await self._run(name, call)

    async def stats(self, name: str) -> ContainerStats:
        def call() -> ContainerStats:
            state = self._inspect(name)["State"]
            if not state["Running"]:
                # The engine answers zeros for a stopped container: that is no measurement.
                raise ActionFailed(f"{name} is not running ({state['Status']}): no statistics")
            raw = self._docker().api.stats(name, stream=False)
            return _stats(name, raw)

        return await self._run(name, call)

    async def wait_healthy(self, name: str, timeout_s: float) -> str:
        """Wait until the container runs and, if it has a health check, reports healthy
        (`docker restart` resets it to `starting`). Says what it waited for."""
        started = time.monotonic()
        while True:
            state = (await self.inspect(name))["State"]
            health = (state.get("Health") or {}).get("Status")
            if state["Running"] and health in (None, "healthy"):
                return "running" if health is None else "health check healthy"
            if time.monotonic() - started > timeout_s:
                raise ActionFailed(
                    f"{name} not ready within {timeout_s:g} s: {state['Status']}"
                    + (f", health {health}" if health else "")
                )
            await asyncio.sleep(0.25)

    async def logs(self, name: str, since_s: int, tail: int | None) -> bytes:
        def call() -> bytes:
            out: bytes = self._docker().api.logs(
                name,
                stdout=True,
                stderr=True,
                timestamps=True,
                since=int(time.time()) - since_s,
                tail=tail if tail is not None else "all",
            )
            return out

        return await self._run(name, call)

    async def status(self, names: list[str]) -> list[dict[str, object]]:
        def call() -> list[dict[str, object]]:
            rows: list[dict[str, object]] = []
            for name in names:
                valid_container_name(name)
                try:
                    info = self._inspect(name)
                except NotFound:
                    rows.append({"name": name, "status": "not found"})
                    continue
                state = info["State"]
                health = (state.get("Health") or {}).get("Status")
                rows.append(
                    {
                        "name": name,
                        "id": info["Id"][:12],
                        "image": info["Config"]["Image"],
                        "status": state["Status"],
                        "health": health,
                        "started_at": state["StartedAt"],
                        "restart_count": info.get("RestartCount", 0),
                    }
                )
            return rows

        return await asyncio.to_thread(call)

    async def disk_usage(self) -> str:
        def call() -> str:
            df = self._docker().df()
            lines = [
                f"Images: {len(df.get('Images') or [])}, {df.get('LayersSize', 0)} B in layers",
                f"Containers: {len(df.get('Containers') or [])}",
                f"Volumes: {len(df.get('Volumes') or [])}",
                f"Build cache entries: {len(df.get('BuildCache') or [])}",
            ]
            return "\n".join(lines) + "\n"

        return await asyncio.to_thread(call)

    async def system_prune(self, label: str | None) -> str:
        """`docker system prune -f`: stopped containers, unused networks, dangling images."""

        def call() -> str:
            api = self._docker().api
            filters = {"label": [label]} if label else None
            containers = api.prune_containers(filters=filters) or {}
            networks = api.prune_networks(filters=filters) or {}
            images = api.prune_images(filters={**(filters or {}), "dangling": ["true"]}) or {}
            return (
                f"system prune: {len(containers.get('ContainersDeleted') or [])} containers, "
                f"{len(networks.get('NetworksDeleted') or [])} networks, "
                f"{len(images.get('ImagesDeleted') or [])} images removed, "
                f"{(containers.get('SpaceReclaimed') or 0) + (images.get('SpaceReclaimed') or 0)}"
                " B reclaimed"
            )

        return await self._run(None, call)

    async def volume_prune(self, label: str | None) -> str:
        """`docker volume prune -f`: volumes no container uses."""

        def call() -> str:
            result = (
                self._docker().api.prune_volumes(filters={"label": [label]} if label else None)
                or {}
            )
            deleted = result.get("VolumesDeleted") or []
            return (
                f"volume prune: {len(deleted)} volumes removed "
                f"({', '.join(deleted) or 'none'}), {result.get('SpaceReclaimed') or 0} B reclaimed"
            )

        return await self._run(None, call)

    async def exec_to_file(
        self, name: str, argv: list[str], dest: Path | None, timeout_s: float
    ) -> tuple[int, bytes]:
        """Run argv (no shell) in the container; stdout streams to `dest` when given.

        Returns the exit code and stderr (stdout too when no `dest`).
        """

        def call() -> tuple[int, bytes]:
            api = self._docker().api
            exec_id = api.exec_create(name, argv, stdout=True, stderr=True)["Id"]
            collected = bytearray()
            sink = private_file(dest) if dest is not None else None
            try:
                for out, err in api.exec_start(exec_id, stream=True, demux=True):
                    if out and sink is not None:
                        sink.write(out)
                    elif out:
                        collected += out[: 1_000_000 - len(collected)]
                    if err:
                        collected += err[: 1_000_000 - len(collected)]
            finally:
                if sink is not None:
                    sink.close()
            code = api.exec_inspect(exec_id).get("ExitCode")
            return (int(code) if code is not None else -1), bytes(collected)

        return await asyncio.wait_for(self._run(name, call), timeout_s)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _create_config(info: dict[str, Any]) -> dict[str, Any]:
    """`POST /containers/create` body that reproduces an inspected container."""
    config = {k: v for k, v in info["Config"].items() if k in _CREATE_FIELDS}
    short_id = info["Id"][:12]
    if config.get("Hostname") == short_id:
        config.pop("Hostname")  # the engine's default, derived from the old id
    config["HostConfig"] = info["HostConfig"]
    endpoints: dict[str, Any] = {}
    for network, endpoint in (info.get("NetworkSettings", {}).get("Networks") or {}).items():
        aliases = [a for a in (endpoint.get("Aliases") or []) if a != short_id]
        endpoints[network] = {
            "Aliases": aliases or None,
            "Links": endpoint.get("Links"),
            "IPAMConfig": endpoint.get("IPAMConfig"),
        }
    config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return config


def _stats(name: str, raw: dict[str, Any]) -> ContainerStats:
    """CPU and memory the way `docker stats` computes them."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [1])
    percent = 100.0 * cpu_delta / system_delta * online if system_delta > 0 and cpu_delta > 0 else 0
    memory = raw.get("memory_stats") or {}
    usage = memory.get("usage", 0)
    inner = memory.get("stats") or {}
    usage -= inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return ContainerStats(name, percent, max(usage, 0), memory.get("limit", 0))


def _explain(exc: DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
