"""The services as separate local processes, exactly as containers run them.

For fault tests (kill -9 one service while alerts flow, restart Redis) and benchmarks:
one `redis-server` with append-only persistence, and `jarvis-ir serve <name>` per
service on its own loopback port, all sharing one Redis and one database.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from shared.embedded_redis import EmbeddedRedis, free_port

T = TypeVar("T")

__all__ = ["LocalCluster", "ServiceProcess", "jarvis_ir_command", "wait_until"]


def jarvis_ir_command() -> list[str]:
    """The installed `jarvis-ir` next to this Python, else `python -m services.cli`."""
    found = shutil.which("jarvis-ir", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "services.cli"]


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `check` until it returns something truthy, and return that; TimeoutError
    naming `what` when it does not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("JARVIS_HTTP_TLS_CERTFILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*jarvis_ir_command(), "serve", self.name],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.env.get("JARVIS_DATA_DIR", "."),
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                answer = httpx.get(
                    f"{self.url}/health", timeout=1, verify=self.tls(), headers=self.auth()
                )
                if answer.status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health:\n{self.log_tail()}")

    def tls(self) -> ssl.SSLContext | bool:
        """What to trust: its own certificate (self-signed in tests) when it serves HTTPS."""
        certfile = self.env.get("JARVIS_HTTP_TLS_CERTFILE")
        return ssl.create_default_context(cafile=certfile) if certfile else True

    def auth(self) -> dict[str, str]:
        token = self.env.get("JARVIS_API_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no acknowledgements in flight."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait: the graceful path a container stop takes."""
        if not self.proc:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class LocalCluster:
    """Redis plus one process per service, under `workdir`."""

    workdir: Path
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    external_redis_url: str | None = None  # a Redis started elsewhere (no embedded one)

    def start_redis(self) -> str:
        self.redis = EmbeddedRedis(self.workdir, port=self.redis.port if self.redis else 0)
        return self.redis.start()

    @property
    def redis_url(self) -> str:
        if self.external_redis_url:
            return self.external_redis_url
        assert self.redis
        return self.redis.url

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("JARVIS_") and k != "REDIS_URL"
        }
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "JARVIS_DATA_DIR": str(self.workdir),
                "JARVIS_LOG_LEVEL": "WARNING",
            }
        )
        env["DATABASE_URL"] = self.database_url or (
            f"sqlite+aiosqlite:///{self.workdir / 'recorder.sqlite3'}"
        )
        env.update(self.extra_env)
        return env

    def add(self, name: str, *, key: str = "", **env: str) -> ServiceProcess:
        """Start `jarvis-ir serve name`, known as `key` (another replica of one service
        needs a key of its own; the service's name by default)."""
        key = key or name
        service = ServiceProcess(
            name=name,
            port=free_port(),
            env={**self.env(), **env},
            log_path=self.workdir / f"{key}.log",
        )
        service.env["JARVIS_HTTP_PORT"] = str(service.port)
        if key in self.services:
            raise ValueError(f"{key} is running already: give the replica a key of its own")
        self.services[key] = service
        service.start()
        return service

    def stop(self) -> None:
        for service in self.services.values():
            service.terminate(timeout_s=15)
        if self.redis:
            self.redis.stop()

    def __enter__(self) -> LocalCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.external_redis_url:
            self.start_redis()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
