"""HTTP probes: the backend, Ollama (tags and the inference canary), any HTTP target, and
the pollers of Prometheus' and Grafana's alert APIs (CONTRACT §1, runbook Phase 1)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from services.detector.external import PayloadError
from services.detector.http_status import StatusTarget, check_status
from services.detector.probes import Outcome, ProbeResult, Schedule
from shared.clock import Clock
from shared.events import AlertRaised, Level

__all__ = [
    "AlertPoller",
    "BackendHealthProbe",
    "HttpTargetProbe",
    "OllamaCanaryProbe",
    "OllamaTagsProbe",
]


async def _get(
    client: httpx.AsyncClient, url: str, limit_s: float, **kwargs: Any
) -> httpx.Response | str:
    """The answer, or a sentence saying why there is none."""
    try:
        return await client.get(url, timeout=limit_s, **kwargs)
    except httpx.TimeoutException:
        return f"timeout after {limit_s:g}s"
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}: {exc}".rstrip(": ")


class BackendHealthProbe:
    """`GET {backend}/health`: reachable, 2xx, `status` healthy; degraded is told apart."""

    service = "backend"
    check = "health"

    def __init__(self, client: httpx.AsyncClient, base_url: str, schedule: Schedule) -> None:
        self.name = "backend-health"
        self.schedule = schedule
        self._client = client
        self._url = base_url.rstrip("/") + "/health"

    async def run(self) -> Outcome:
        return Outcome([self._judge(await _get(self._client, self._url, self.schedule.timeout_s))])

    def _judge(self, resp: httpx.Response | str) -> ProbeResult:
        def fail(
            detail: str, impact: Level = Level.HIGH, urgency: Level = Level.LOW
        ) -> ProbeResult:
            return ProbeResult(self.service, self.check, False, detail, impact, urgency)

        if isinstance(resp, str):
            return fail(f"backend {resp}")
        if resp.status_code >= 300:
            return fail(f"HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            return fail("health answer is not JSON", Level.MEDIUM)
        status = str(body.get("status", "")) if isinstance(body, dict) else ""
        if status == "healthy":
            return ProbeResult(self.service, self.check, True, "healthy")
        if status == "degraded":
            return fail("backend reports degraded", Level.MEDIUM)
        return fail(f"backend status {status!r}")


class HttpTargetProbe:
    """Any HTTP endpoint that must answer with one of the expected status codes (the
    status line is all it reads: see `http_status`)."""

    check = "http"

    def __init__(
        self,
        name: str,
        url: str,
        service: str,
        expect_status: Sequence[int],
        schedule: Schedule,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.service = service
        self.schedule = schedule
        self._tls = tls
        self._target = StatusTarget.parse(url)
        self._expect = frozenset(expect_status)
        self._labels = {"target": name}

    async def run(self) -> Outcome:
        answer = await check_status(self._target, self.schedule.timeout_s, self._tls)
        if isinstance(answer, str):
            ok, detail = False, answer
        else:
            ok = answer in self._expect if self._expect else 200 <= answer < 300
            detail = f"HTTP {answer}"
        return Outcome([ProbeResult(self.service, self.check, ok, detail, labels=self._labels)])


class OllamaTagsProbe:
    """`GET {ollama}/api/tags`: reachable, and at least one model (runbook scenario 3)."""

    service = "ollama"
    check = "api"

    def __init__(self, client: httpx.AsyncClient, base_url: str, schedule: Schedule) -> None:
        self.name = "ollama-tags"
        self.schedule = schedule
        self._client = client
        self._url = base_url.rstrip("/") + "/api/tags"

    async def run(self) -> Outcome:
        resp = await _get(self._client, self._url, self.schedule.timeout_s)
        if isinstance(resp, str):
            return Outcome([ProbeResult("ollama", "api", False, f"Ollama {resp}")])
        if resp.status_code >= 300:
            return Outcome([ProbeResult("ollama", "api", False, f"HTTP {resp.status_code}")])
        try:
            models = resp.json().get("models")
        except (ValueError, AttributeError):
            models = None
        if not isinstance(models, list):
            return Outcome([ProbeResult("ollama", "api", False, "answer has no `models` list")])
        count = len(models)
        return Outcome(
            [
                ProbeResult("ollama", "api", True, "reachable"),
                ProbeResult(
                    "ollama",
                    "models",
                    count > 0,
                    f"{count} models" if count else "No models available",
                    value=count,
                ),
            ]
        )


class OllamaCanaryProbe:
    """`POST {ollama}/api/generate` with a small prompt, slower than a threshold = failing."""

    service = "ollama"
    check = "inference"

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        model: str,
        prompt: str,
        max_latency_s: float,
        schedule: Schedule,
    ) -> None:
        self.name = "ollama-canary"
        self.schedule = schedule
        self._client = client
        self._url = base_url.rstrip("/") + "/api/generate"
        self._body = {"model": model, "prompt": prompt, "stream": False}
        self._max = max_latency_s
        self._labels = {"model": model}

    async def run(self) -> Outcome:
        started = time.perf_counter()
        try:
            resp = await self._client.post(
                self._url, json=self._body, timeout=self.schedule.timeout_s
            )
        except httpx.TimeoutException:
            return self._result(False, f"no answer within {self.schedule.timeout_s:g}s")
        except httpx.HTTPError as exc:
            return self._result(False, f"unreachable: {exc}")
        latency = time.perf_counter() - started
        if resp.status_code >= 300:
            return self._result(False, f"HTTP {resp.status_code}: {resp.text[:200]}", latency)
        if latency > self._max:
            return self._result(
                False, f"slow inference: {latency:.1f}s > {self._max:g}s", latency, Level.MEDIUM
            )
        return self._result(True, f"answered in {latency:.2f}s", latency)

    def _result(
        self, ok: bool, detail: str, latency: float | None = None, impact: Level = Level.HIGH
    ) -> Outcome:
        return Outcome(
            [
                ProbeResult(
                    "ollama", "inference", ok, detail, impact, value=latency, labels=self._labels
                )
            ]
        )


Mapper = Callable[[Any, Sequence[str], datetime], dict[str, AlertRaised]]


class AlertPoller:
    """Polls another system's alert API; its firing alerts become AlertRaised (and their
    disappearance resolves them), its reachability is a check of its own."""

    check = "alerts-api"

    def __init__(
        self,
        client: httpx.AsyncClient,
        sender: str,
        url: str,
        mapper: Mapper,
        service_labels: Sequence[str],
        clock: Clock,
        schedule: Schedule,
        token: str | None = None,
    ) -> None:
        self.name = f"{sender}-alerts"
        self.service = sender
        self.schedule = schedule
        self._client = client
        self._url = url
        self._mapper = mapper
        self._service_labels = list(service_labels)
        self._clock = clock
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def run(self) -> Outcome:
        resp = await _get(self._client, self._url, self.schedule.timeout_s, headers=self._headers)
        if isinstance(resp, str):
            return self._down(f"{self.service} {resp}")
        if resp.status_code >= 300:
            return self._down(f"HTTP {resp.status_code}")
        try:
            firing = self._mapper(resp.json(), self._service_labels, self._clock.now())
        except (ValueError, PayloadError) as exc:
            return self._down(f"unexpected answer: {exc}"[:500])
        return Outcome(
            [ProbeResult(self.service, self.check, True, f"{len(firing)} firing")], firing
        )

    def _down(self, detail: str) -> Outcome:
        # Monitoring blind spot: medium impact, and its alerts are kept as they were.
        return Outcome([ProbeResult(self.service, self.check, False, detail, Level.MEDIUM)])
