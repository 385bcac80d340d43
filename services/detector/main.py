"""Detector's composition root: the ingest API and the probe loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from services.detector.ingest import IngestError, parse_alerts
from services.detector.probes import BackendHealthProbe, ProbeTracker
from shared.events import AlertSource
from shared.runtime import Runtime, Service

__all__ = ["NAME", "build"]

NAME = "detector"
log = logging.getLogger(__name__)

ALERTS_INGESTED = Counter(
    "jarvis_alerts_ingested_total", "Alerts accepted onto jarvis:alerts, by source.", ["source"]
)


def build(runtime: Runtime) -> Service:
    settings = runtime.settings.detector
    bus = runtime.bus(NAME)
    router = APIRouter(tags=["ingest"])
    client = httpx.AsyncClient()
    trackers = [
        ProbeTracker(
            BackendHealthProbe(client, runtime.settings.backend_url, settings.probe_timeout_s)
        )
    ]

    @router.post("/api/v1/alerts", status_code=202)
    async def post_alerts(request: Request) -> JSONResponse:
        """Ingest one AlertRaised JSON object or a list; 202 once all are on the stream."""
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"body larger than {settings.max_body_bytes} bytes"}, status_code=413
            )
        try:
            alerts = parse_alerts(body, source=AlertSource.API, producer=NAME)
        except IngestError as exc:
            return JSONResponse({"detail": exc.errors}, status_code=422)
        await bus.publish_many(alerts)
        ALERTS_INGESTED.labels("api").inc(len(alerts))
        return JSONResponse(
            {"accepted": len(alerts), "event_ids": [a.event_id for a in alerts]}, status_code=202
        )

    async def probe_loop() -> None:
        while True:
            results = await asyncio.gather(*(t.probe.run() for t in trackers))
            for tracker, result in zip(trackers, results, strict=True):
                alert = tracker.observe(result)
                if alert is not None:
                    await bus.publish(alert)
                    ALERTS_INGESTED.labels("probe").inc()
            await asyncio.sleep(settings.probe_interval_s)

    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "probes": {
                t.probe.name: {
                    "ok": t.last.ok if t.last else None,
                    "detail": t.last.detail if t.last else "not run yet",
                    "firing": t.firing,
                }
                for t in trackers
            },
        }

    async def close() -> None:
        await client.aclose()

    return Service(
        name=NAME,
        router=router,
        background=[probe_loop] if settings.probes_enabled else [],
        shutdown=[close],
        health=health,
    )
