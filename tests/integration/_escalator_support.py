"""Test stand-ins for the escalator's receivers (real servers on 127.0.0.1) and small
builders shared by the escalator's integration tests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from redis.asyncio import Redis

from shared.events import EscalationDue, EscalationTrigger, Level, Severity, SeverityAssigned
from tests.helpers import read_stream

__all__ = [
    "HttpReceiver",
    "escalation_due",
    "escalations_of",
    "http_receiver",
    "notifications_of",
    "severity_event",
]


@dataclass
class HttpReceiver:
    """An HTTP server that records JSON POSTs and answers as scripted.

    `statuses` are answered in order, then `final_status` forever; `delays` (seconds)
    likewise delay the first answers (to provoke client timeouts, or hold a request open).
    Failures carry `retry_after` as their Retry-After header when it is set. `requests`
    are the answered requests; `arrived` the headers of every request as it came in.
    """

    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    final_status: int = 200
    retry_after: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, float]:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else self.final_status
            delay = self.delays.pop(0) if self.delays else 0.0
            return status, delay

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r["json"] for r in self.requests]


@contextmanager
def http_receiver(
    statuses: list[int] | None = None,
    delays: list[float] | None = None,
    final_status: int = 200,
    retry_after: str = "",
) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(list(statuses or []), list(delays or []), final_status, retry_after)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with receiver._lock:
                receiver.arrived.append(dict(self.headers.items()))
            status, delay = receiver.answer()
            if delay:
                time.sleep(delay)
            with receiver._lock:
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "json": json.loads(raw) if raw else None,
                        "status": status,
                        "at": time.monotonic(),
                    }
                )
            body = json.dumps({"status": "success" if status < 300 else "error"}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status >= 300 and receiver.retry_after:
                    self.send_header("Retry-After", receiver.retry_after)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def escalation_due(incident_id: str, level: int = 2, step: str = "") -> EscalationDue:
    """A time-based escalation of a P0 to `level`, as the escalator's tick emits it."""
    step = step or f"time:900s:L{level}"
    return EscalationDue(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{incident_id}:{step}")),
        producer="escalator",
        incident_id=incident_id,
        correlation_id=incident_id,
        level=level,
        severity=Severity.P0,
        trigger=EscalationTrigger.TIME,
        reason="P0 open for 0:15:00",
        step=step,
        elapsed_s=900,
    )


def severity_event(
    incident_id: str,
    severity: Severity,
    opened_at: datetime,
    *,
    occurred_at: datetime | None = None,
    previous: Severity | None = None,
    **fields: Any,
) -> SeverityAssigned:
    data: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "producer": "triage",
        "incident_id": incident_id,
        "correlation_id": incident_id,
        "severity": severity,
        "previous_severity": previous,
        "impact": Level.HIGH,
        "urgency": Level.HIGH,
        "response_due_at": opened_at + timedelta(minutes=15),
        "opened_at": opened_at,
        "occurred_at": occurred_at or opened_at,
        "reason": "test",
        "fingerprint": f"fp-{incident_id}",
        "service": "backend",
        "title": f"backend down ({incident_id[:8]})",
    }
    data.update(fields)
    return SeverityAssigned(**data)


async def escalations_of(redis: Redis, incident_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in await read_stream(redis, "jarvis:escalations")
        if incident_id is None or e["incident_id"] == incident_id
    ]


async def notifications_of(redis: Redis, incident_id: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in await read_stream(redis, "jarvis:incidents")
        if e.get("event_type") == "NotificationSent"
        and (incident_id is None or e["incident_id"] == incident_id)
    ]
