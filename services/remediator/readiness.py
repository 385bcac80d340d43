"""Is the stack serving? The answers behind a step's `when:` condition and the wait after a
restart (runbook Phase 5 waits up to 60 s for `/health` before it calls a recovery done).

A component is *serving* when it answers at all (backend `/health` with HTTP 200, Ollama
`/api/tags`, PostgreSQL `pg_isready`, Redis `PING`) and *healthy* when it also says so
(backend status `healthy`). After a restart the remediator waits for the container's own
health check, when it has one, and for its component to serve, when it is a Jarvis one.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from services.remediator.ports import ActionFailed, ContainerEngine, DataStore, PostgresPort
from shared.actions import Condition
from shared.settings import Settings

__all__ = ["Readiness"]

_POLL_S = 0.5


class Readiness:
    def __init__(
        self, settings: Settings, engine: ContainerEngine, postgres: PostgresPort, redis: DataStore
    ) -> None:
        s = settings.remediator
        self._backend_url = settings.backend_url.rstrip("/")
        self._ollama_url = settings.ollama_url.rstrip("/")
        self._engine = engine
        self._postgres = postgres
        self._redis = redis
        self._database, self._redis_target = s.database_container, s.redis_container
        self._component = {
            s.backend_container: "backend",
            s.ollama_container: "ollama",
            s.database_container: "postgres",
            s.redis_container: "redis",
        }

    async def holds(self, condition: Condition) -> tuple[bool, str]:
        """Whether `condition` holds now, and what was found."""
        if condition.container is not None:
            (row,) = await self._engine.status([condition.container])
            status = str(row.get("status"))
            running = status == "running"
            found = f"{condition.container} is {'running' if running else 'not running'}"
            if not running:
                found += f" ({status})"
            return running == (condition.state == "running"), found
        assert condition.probe is not None
        healthy, detail = await self.probe(condition.probe, strict=True)
        return healthy == condition.healthy, f"{condition.probe} is {detail}"

    async def probe(self, component: str, *, strict: bool = False) -> tuple[bool, str]:
        """(serving, what was found); `strict`: the backend must also report `healthy`."""
        try:
            if component == "backend":
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(f"{self._backend_url}/health")
                status = _json_field(response, "status")
                ok = response.status_code == 200 and (not strict or status == "healthy")
                word = "healthy" if ok else "unhealthy"
                return ok, f"{word} (HTTP {response.status_code}, status {status!r})"
            if component == "ollama":
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(f"{self._ollama_url}/api/tags")
                ok = response.status_code == 200
                return (
                    ok,
                    f"{'healthy' if ok else 'unhealthy'} (/api/tags HTTP {response.status_code})",
                )
            if component == "postgres":
                waited = await self._postgres.wait_ready(self._database, 1)
                return True, f"healthy (ready, {waited:.1f} s)"
            if component == "redis":
                ok = await self._redis.ping(self._redis_target)
                return ok, "healthy (PONG)" if ok else "unhealthy (no PONG)"
        except (httpx.HTTPError, ActionFailed, OSError) as exc:
            return False, f"unhealthy ({type(exc).__name__}: {exc})"[:300]
        raise ValueError(f"unknown component {component!r}")

    async def wait(self, container: str, timeout_s: float) -> str:
        """Wait until `container` serves again: its health check, then its component.
        Returns what was waited for; raises ActionFailed after `timeout_s`."""
        started = time.monotonic()
        waited = [await self._engine.wait_healthy(container, timeout_s)]
        component = self._component.get(container)
        if component is not None:
            last = ""
            while True:
                ok, last = await self.probe(component)
                if ok:
                    break
                if time.monotonic() - started > timeout_s:
                    raise ActionFailed(
                        f"{container} did not serve within {timeout_s:g} s: {component} {last}"
                    )
                await asyncio.sleep(_POLL_S)
            waited.append(f"{component} {last.split(' (')[0]}")
        return f"ready after {time.monotonic() - started:.1f} s ({', '.join(waited)})"


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
