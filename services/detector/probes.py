"""Probes of the Jarvis stack, and the state machine that turns results into alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from shared.events import AlertRaised, AlertSource, AlertStatus, Level

__all__ = ["BackendHealthProbe", "Probe", "ProbeResult", "ProbeTracker"]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    impact: Level = Level.HIGH
    urgency: Level = Level.LOW
    data: dict[str, Any] = field(default_factory=dict)


class Probe(Protocol):
    name: str
    service: str
    check: str

    async def run(self) -> ProbeResult: ...


class BackendHealthProbe:
    """`GET {backend}/health`: reachable, 2xx, and `status` healthy (CONTRACT §1)."""

    service = "backend"
    check = "health"

    def __init__(self, client: httpx.AsyncClient, base_url: str, timeout_s: float) -> None:
        self.name = "backend-health"
        self._client = client
        self._url = base_url.rstrip("/") + "/health"
        self._timeout = timeout_s

    async def run(self) -> ProbeResult:
        try:
            resp = await self._client.get(self._url, timeout=self._timeout)
        except httpx.TimeoutException:
            return ProbeResult(False, f"timeout after {self._timeout:g}s", Level.HIGH, Level.MEDIUM)
        except httpx.HTTPError as exc:
            return ProbeResult(False, f"unreachable: {exc}", Level.HIGH, Level.MEDIUM)
        if resp.status_code >= 300:
            return ProbeResult(False, f"HTTP {resp.status_code}", Level.HIGH, Level.MEDIUM)
        try:
            status = str(resp.json().get("status", ""))
        except ValueError:
            return ProbeResult(False, "health answer is not JSON", Level.MEDIUM, Level.MEDIUM)
        if status == "healthy":
            return ProbeResult(True, "healthy")
        if status == "degraded":
            return ProbeResult(False, "backend reports degraded", Level.MEDIUM, Level.LOW)
        return ProbeResult(False, f"backend status {status!r}", Level.HIGH, Level.MEDIUM)


class ProbeTracker:
    """Firing after `fire_after` consecutive failures, resolved after `resolve_after` successes.

    Returns an alert only when the state changes, so an unchanged state is not re-published.
    """

    def __init__(self, probe: Probe, fire_after: int = 1, resolve_after: int = 1) -> None:
        self.probe = probe
        self.fire_after = fire_after
        self.resolve_after = resolve_after
        self.firing = False
        self.failures = 0
        self.successes = 0
        self.last: ProbeResult | None = None

    def observe(self, result: ProbeResult) -> AlertRaised | None:
        self.last = result
        if result.ok:
            self.successes += 1
            self.failures = 0
            if self.firing and self.successes >= self.resolve_after:
                self.firing = False
                return self._alert(result, AlertStatus.RESOLVED)
            return None
        self.failures += 1
        self.successes = 0
        if not self.firing and self.failures >= self.fire_after:
            self.firing = True
            return self._alert(result, AlertStatus.FIRING)
        return None

    def _alert(self, result: ProbeResult, status: AlertStatus) -> AlertRaised:
        return AlertRaised(
            producer="detector",
            source=AlertSource.PROBE,
            service=self.probe.service,
            check=self.probe.check,
            status=status,
            summary=f"{self.probe.service} {self.probe.check}: {result.detail}",
            impact=result.impact if status is AlertStatus.FIRING else None,
            urgency=result.urgency if status is AlertStatus.FIRING else None,
            labels={"probe": self.probe.name},
        )
