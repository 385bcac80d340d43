"""Stand-ins for the Jarvis stack's HTTP services: a real HTTP/1.1 server on 127.0.0.1
whose answers a test changes while the detector probes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Route", "StubHTTP", "pagerduty_event", "stub_http"]


def pagerduty_event(
    action: str, dedup_key: str | None, routing_key: str, **payload: Any
) -> dict[str, Any]:
    """An Events API v2 body as PagerDuty's senders write it (a trigger has a payload)."""
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action}
    if dedup_key:
        body["dedup_key"] = dedup_key
    if action == "trigger":
        body["payload"] = {
            "summary": "Backend API unresponsive",
            "source": "jarvis-host",
            "severity": "critical",
            "component": "backend",
            **payload,
        }
    return body


@dataclass
class Route:
    status: int = 200
    body: Any = None  # dict/list → JSON, str/bytes as is
    delay_s: float = 0.0


class StubHTTP:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    def set(
        self, method: str, path: str, status: int = 200, body: Any = None, delay_s: float = 0.0
    ) -> None:
        self.routes[(method, path)] = Route(status, body, delay_s)

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                self.headers.append(headers)
                body = await reader.readexactly(length) if length else b""
                path = target.split("?", 1)[0]
                self.requests.append((method, path, body))
                route = self.routes.get((method, path), Route(404, {"detail": "not found"}))
                if route.delay_s:
                    await asyncio.sleep(route.delay_s)
                payload = route.body
                if isinstance(payload, (dict, list)):
                    data, kind = json.dumps(payload).encode(), "application/json"
                elif isinstance(payload, str):
                    data, kind = payload.encode(), "text/plain"
                else:
                    data, kind = payload or b"", "application/octet-stream"
                writer.write(
                    f"HTTP/1.1 {route.status} X\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return  # the client went away, or the server is closing
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def stub_http() -> AsyncIterator[StubHTTP]:
    stub = StubHTTP()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
