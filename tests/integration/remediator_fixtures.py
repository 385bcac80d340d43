"""Fixtures of the remediator's integration tests: the real Docker engine, the local
busybox test image (built here when missing), stand-in Jarvis containers on host
networking bound to 127.0.0.1, and small loopback HTTP stand-ins (backend, Ollama).

Every container carries a label unique to its test and is removed afterwards.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from docker.models.containers import Container
from redis.asyncio import Redis

from shared.streams import ACTIONS_COMPLETED
from tests.conftest import require
from tests.helpers import eventually, read_stream

IMAGE = "jarvis-test/busybox"
_APPLETS = ("sh", "httpd", "sleep", "cat", "echo", "mkdir", "chmod", "ls", "rm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_image(client: docker.DockerClient) -> None:
    """Build jarvis-test/busybox from the host's static busybox (no registry here)."""
    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    busybox = Path("/bin/busybox")
    require(busybox.exists(), "/bin/busybox is missing (apt-get install busybox-static)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in _APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    client.api.import_image_from_data(buffer.getvalue(), repository=IMAGE)


@pytest.fixture(scope="session", name="docker_client")
def docker_client_fixture() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        require(False, f"no Docker engine ({exc}); scripts/ci-docker.sh starts one")
        raise
    _ensure_image(client)
    yield client
    client.close()


class Containers:
    """Starts stand-in containers for one test and removes them all afterwards."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.label = f"t5-{uuid.uuid4().hex[:10]}"

    def name(self, role: str) -> str:
        return f"jt5-{role}-{uuid.uuid4().hex[:8]}"

    def run(self, script: str, *, name: str | None = None, **options: Any) -> Container:
        options.setdefault("network_mode", "host")
        options.setdefault("labels", {"jarvis.test": self.label})
        return self.client.containers.run(
            IMAGE,
            ["sh", "-c", script],
            name=name or self.name("c"),
            detach=True,
            init=True,
            **options,
        )

    def httpd(self, port: int, *, name: str | None = None, **options: Any) -> Container:
        """A stand-in backend: busybox httpd on 127.0.0.1:port serving /health."""
        script = (
            'echo started; echo \'{"status": "healthy"}\' > /health; '
            f"exec httpd -f -p 127.0.0.1:{port} -h /"
        )
        return self.run(script, name=name, **options)

    def inspect(self, name: str) -> dict[str, Any]:
        info: dict[str, Any] = self.client.api.inspect_container(name)
        return info

    def cleanup(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"jarvis.test={self.label}"}
        ):
            container.remove(force=True)
        for volume in self.client.volumes.list(filters={"label": f"jarvis.test={self.label}"}):
            volume.remove(force=True)


@pytest.fixture(name="containers")
def containers_fixture(docker_client: docker.DockerClient) -> Iterator[Containers]:
    made = Containers(docker_client)
    yield made
    made.cleanup()


def wait_http(url: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


Route = Callable[[str, dict[str, Any] | None], tuple[int, Any]]


class StandIn:
    """A loopback HTTP server answering JSON from a route function; records requests."""

    def __init__(self, route: Route) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict[str, Any] | None) -> None:
                outer.requests.append((self.command, self.path, body))
                status, payload = route(f"{self.command} {self.path}", body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def answers(redis: Redis, action_id: str) -> list[dict[str, Any]]:
    """Every ActionCompleted of one action, in order."""
    return [
        c for c in await read_stream(redis, ACTIONS_COMPLETED.key) if c["action_id"] == action_id
    ]


async def final_answer(redis: Redis, action_id: str, timeout: float = 20) -> dict[str, Any]:
    """The action's final ActionCompleted (not the `awaiting_approval` one)."""

    async def check() -> list[dict[str, Any]]:
        return [a for a in await answers(redis, action_id) if a["outcome"] != "awaiting_approval"]

    found = await eventually(check, timeout=timeout)
    return dict(found[0])
