"""Detector's composition root: builds the probes from the settings, the ingress routes,
and the probe runner that publishes their alerts."""

from __future__ import annotations

from typing import Any

import httpx

from services.detector import probes_docker as dk
from services.detector.budget import ServiceBudget
from services.detector.external import from_grafana_api, from_prometheus_api
from services.detector.heartbeat import HeartbeatProbe, HeartbeatStore
from services.detector.lease import ProberLease
from services.detector.probes import Probe, Schedule
from services.detector.probes_http import (
    AlertPoller,
    BackendHealthProbe,
    HttpTargetProbe,
    OllamaCanaryProbe,
    OllamaTagsProbe,
)
from services.detector.probes_infra import HostProbe, PostgresProbe, RedisProbe
from services.detector.scheduler import ProbeRunner
from services.detector.webhooks import ALERTS_INGESTED, build_router
from shared.events import AlertRaised
from shared.runtime import Runtime, Service
from shared.settings import DetectorSettings, ProbeSchedule, Settings

__all__ = ["NAME", "build", "build_probes"]

NAME = "detector"


def _schedule(d: DetectorSettings, own: ProbeSchedule) -> Schedule:
    return Schedule(
        interval_s=own.interval_s or d.probe_interval_s,
        timeout_s=own.timeout_s or d.probe_timeout_s,
        fire_after=own.fire_after or d.fire_after,
        resolve_after=own.resolve_after or d.resolve_after,
    )


def build_probes(runtime: Runtime, client: httpx.AsyncClient) -> list[Probe]:
    """Every enabled probe, configured from the settings (nothing connects yet)."""
    s: Settings = runtime.settings
    d = s.detector
    probes: list[Probe] = []
    if d.backend.enabled:
        probes.append(BackendHealthProbe(client, s.backend_url, _schedule(d, d.backend)))
    if d.ollama.enabled:
        probes.append(OllamaTagsProbe(client, s.ollama_url, _schedule(d, d.ollama)))
        if d.ollama.canary_model:
            base = _schedule(d, d.ollama)
            canary = Schedule(
                d.ollama.canary_interval_s,
                d.ollama.canary_timeout_s,
                base.fire_after,
                base.resolve_after,
            )
            probes.append(
                OllamaCanaryProbe(
                    client,
                    s.ollama_url,
                    d.ollama.canary_model,
                    d.ollama.canary_prompt,
                    d.ollama.canary_max_latency_s,
                    canary,
                )
            )
    if d.postgres.enabled:
        pg = d.postgres
        probes.append(PostgresProbe(pg.dsn, pg.max_connections_pct, _schedule(d, pg)))
    if d.redis.enabled:
        probes.append(RedisProbe(d.redis.url, d.redis.max_memory_pct, _schedule(d, d.redis)))
    containers = [
        (c.name, dk.service_for_container(c.name, c.service)) for c in d.docker.containers
    ]
    if d.docker.enabled and containers:
        dock = d.docker
        limits = dk.ContainerLimits(
            dock.cpu_pct, dock.memory_pct, dock.max_restarts, dock.restart_window_s, dock.stats
        )
        factory = dk.client_factory(dock.docker_host, _schedule(d, dock).timeout_s)
        probes.append(dk.DockerProbe(factory, containers, limits, _schedule(d, dock)))
    if d.logs.enabled and containers:
        lg = d.logs
        factory = dk.client_factory(d.docker.docker_host, _schedule(d, lg).timeout_s)
        probes.append(
            dk.LogErrorsProbe(
                factory, containers, lg.pattern, lg.window_s, lg.threshold, _schedule(d, lg)
            )
        )
    if d.host.enabled:
        h = d.host
        probes.append(HostProbe(h.disk_path, h.disk_pct, h.memory_pct, h.cpu_pct, _schedule(d, h)))
    for sender, base_url, poll, mapper in (
        ("prometheus", s.prometheus_url, d.prometheus, _prometheus),
        ("grafana", s.grafana_url, d.grafana, from_grafana_api),
    ):
        if poll.enabled:
            url = base_url.rstrip("/") + poll.path
            probes.append(
                AlertPoller(
                    client,
                    sender,
                    url,
                    mapper,
                    d.service_labels,
                    runtime.clock,
                    _schedule(d, poll),
                    poll.token,
                )
            )
    for target in d.http_targets:
        if target.enabled:
            probes.append(
                HttpTargetProbe(
                    target.name,
                    target.url,
                    target.service,
                    target.expect_status,
                    _schedule(d, target),
                )
            )
    if d.heartbeats:
        # Checked often enough to notice silence within a small part of the shortest period.
        every = min(d.probe_interval_s, min(h.period_s for h in d.heartbeats) / 4)
        probes.append(
            HeartbeatProbe(
                HeartbeatStore(runtime.redis),
                d.heartbeats,
                runtime.clock,
                Schedule(every, d.probe_timeout_s, 1, 1),
            )
        )
    return probes


def _prometheus(body: Any, labels: Any, now: Any) -> dict[str, AlertRaised]:
    return from_prometheus_api(body, labels, now, sender="prometheus")


def build(runtime: Runtime) -> Service:
    settings = runtime.settings.detector
    bus = runtime.bus(NAME)
    client = httpx.AsyncClient(
        # httpcore scans its whole pool for every request: few idle connections kept, so a
        # cycle of 1,000 probes stays cheap; many may be open at once, so hanging targets
        # never make the others wait for a connection.
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_keepalive_connections,
        ),
        follow_redirects=False,
    )
    probes = build_probes(runtime, client) if settings.probes_enabled else []
    # Replicas elect one prober (lease.py); ingest stays active-active.
    lease = ProberLease(
        runtime.redis,
        runtime.instance,
        settings.prober_lease_ttl_s or settings.probe_interval_s,
        runtime.alert_admission.seal,
    )

    async def publish(alerts: list[AlertRaised]) -> None:
        await runner.publish_fenced(alerts)
        ALERTS_INGESTED.labels("probe").inc(len(alerts))

    runner = ProbeRunner(
        probes,
        publish,
        runtime.clock,
        retry_interval_s=settings.retry_interval_s,
        renotify_s=settings.renotify_s,
        lease=lease,
    )

    async def health() -> dict[str, Any]:
        # The detector is healthy while it runs; what it found is data, not its own status.
        report = runner.health()
        failing = sorted(
            f"{name}:{key}"
            for name, entry in report.items()
            for key, check in entry["checks"].items()
            if check["firing"]
        )
        return {
            "status": "ok",
            "prober": lease.is_prober,  # this replica holds the prober lease and probes
            "prober_epoch": lease.epoch,
            "firing": failing,
            "probes": report,
        }

    async def close() -> None:
        if settings.probes_enabled:
            await lease.release()
        await client.aclose()
        for probe in probes:
            closer = getattr(probe, "close", None)
            if closer is not None:
                await closer()

    ingress = build_router(
        settings,
        bus,
        runtime.redis,
        runtime.clock,
        runtime.access,
        ServiceBudget(runtime.redis, runtime.settings),
    )
    return Service(
        name=NAME,
        router=ingress.router,
        direct=ingress.direct,
        # The lease is taken whenever probing is on, even with no probe configured:
        # `prober` in /health says which replica probes.
        background=[
            *([lease.run_forever] if settings.probes_enabled else []),
            *([runner.run_forever] if probes else []),
        ],
        shutdown=[close],
        health=health,
    )
