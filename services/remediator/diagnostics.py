"""Runbook Phase 4, the evidence bundle, written into one directory per incident:
container status, resource usage, engine disk usage, each service's recent logs, the
backend's health JSON, Ollama's models, and the host's processes, memory and disk."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil

from services.remediator.artifacts import private_dir, write_private
from services.remediator.ports import ContainerEngine
from shared.settings import Settings

__all__ = ["Diagnostics"]


class Diagnostics:
    """`DiagnosticsPort`. A part that cannot be collected records its error in its file."""

    def __init__(self, settings: Settings, engine: ContainerEngine) -> None:
        self._settings = settings
        self._engine = engine

    async def collect(self, directory: Path, containers: list[str], since_s: int) -> list[Path]:
        await asyncio.to_thread(private_dir, directory)
        s = self._settings
        known = list(dict.fromkeys([*s.remediator.allowed_targets, *containers]))
        known = [name for name in known if name != "*"]
        parts: dict[str, Callable[[], Awaitable[str]]] = {
            "container_status.txt": lambda: self._status(known),
            "resource_usage.txt": lambda: self._usage(known),
            "disk_usage.txt": self._engine.disk_usage,
            "backend_health.json": lambda: _http_json(f"{s.backend_url.rstrip('/')}/health"),
            "ollama_models.json": lambda: _http_json(f"{s.ollama_url.rstrip('/')}/api/tags"),
            "system_processes.txt": lambda: asyncio.to_thread(_processes),
            "memory_status.txt": lambda: asyncio.to_thread(_memory),
            "disk_status.txt": lambda: asyncio.to_thread(_disks),
        }
        for name in containers:
            parts[f"{name}_logs.txt"] = lambda name=name: self._logs(name, since_s)  # type: ignore[misc]
        texts = await asyncio.gather(*(_guarded(part) for part in parts.values()))
        written = []
        for file_name, text in zip(parts, texts, strict=True):
            written.append(write_private(directory / file_name, text.encode()))
        return written

    async def _status(self, names: list[str]) -> str:
        rows = await self._engine.status(names)
        return "".join(
            f"{r['name']}: {r['status']}"
            + (
                f" id={r['id']} image={r['image']} health={r['health']} started={r['started_at']}"
                f" restarts={r['restart_count']}"
                if "id" in r
                else ""
            )
            + "\n"
            for r in rows
        )

    async def _usage(self, names: list[str]) -> str:
        rows = await self._engine.status(names)
        running = [str(r["name"]) for r in rows if r["status"] == "running"]
        results = await asyncio.gather(
            *(self._engine.stats(name) for name in running), return_exceptions=True
        )
        lines = [
            r.line() if not isinstance(r, BaseException) else f"{name}: error {r}"
            for name, r in zip(running, results, strict=True)
        ]
        return "\n".join(lines or ["no running container"]) + "\n"

    async def _logs(self, name: str, since_s: int) -> str:
        return (await self._engine.logs(name, since_s, None)).decode("utf-8", "replace")


async def _guarded(part: Callable[[], Awaitable[str]]) -> str:
    try:
        return await part()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}\n"


async def _http_json(url: str) -> str:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
        return json.dumps({"http_status": response.status_code, "body": _body(response)}, indent=2)
    except httpx.HTTPError as exc:
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"}, indent=2)


def _body(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:10_000]


def _processes() -> str:
    rows = []
    for proc in psutil.process_iter(["pid", "name", "username", "cpu_percent", "memory_percent"]):
        info = proc.info
        rows.append((info.get("memory_percent") or 0.0, info.get("cpu_percent") or 0.0, info))
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    lines = [f"{'PID':>7} {'%CPU':>6} {'%MEM':>6} USER NAME"]
    for mem, cpu, info in rows[:50]:
        user = info.get("username")
        lines.append(f"{info['pid']:>7} {cpu:>6.1f} {mem:>6.1f} {user} {info['name']}")
    load = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    return f"load average: {load}\n" + "\n".join(lines) + "\n"


def _memory() -> str:
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    mib = 2**20
    return (
        f"Mem:  total {vm.total // mib} MiB, used {vm.used // mib} MiB, "
        f"available {vm.available // mib} MiB ({vm.percent} % used)\n"
        f"Swap: total {swap.total // mib} MiB, used {swap.used // mib} MiB\n"
    )


def _disks() -> str:
    lines = []
    for part in psutil.disk_partitions(all=False):
        try:
            usage = shutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        percent = 100 * usage.used / usage.total if usage.total else 0
        lines.append(
            f"{part.mountpoint}: {usage.used // 2**30} GiB used of {usage.total // 2**30} GiB "
            f"({percent:.0f} %)"
        )
    return "\n".join(lines or ["no disks"]) + "\n"
