"""HTTP ingress of the detector: our own JSON, Alertmanager, PagerDuty, Grafana and heartbeats.

Every route reads the body under a size limit, validates all of it (a batch is accepted
whole or refused with the bad fields named), puts every alert on `jarvis:alerts`, and only
then answers 2xx.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from redis.asyncio import Redis

from services.detector import pagerduty
from services.detector.external import PayloadError, from_alertmanager, from_grafana
from services.detector.heartbeat import HeartbeatStore
from services.detector.ingest import IngestError, parse_alerts
from shared.bus import EventBus, as_text
from shared.clock import Clock
from shared.events import AlertRaised, AlertSource, IncidentAcknowledged
from shared.settings import DetectorSettings

__all__ = ["ALERTS_INGESTED", "build_router"]

log = logging.getLogger(__name__)

ALERTS_INGESTED = Counter(
    "jarvis_alerts_ingested_total", "Alerts accepted onto jarvis:alerts, by source.", ["source"]
)
TRUNCATED = Counter(
    "jarvis_detector_truncated_alerts_total",
    "Alerts a sender reported as truncated from its webhook (not received).",
    ["source"],
)

_PD_CONTEXT = "jarvis:detector:pagerduty:{}"  # dedup_key → [service, check] of its trigger
_PD_CONTEXT_TTL_S = 90 * 24 * 3600


class _TooLarge(Exception):
    pass


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(
            [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]
        ) from exc
    except RecursionError as exc:  # a deeply nested body: refused, not a server error
        raise PayloadError(
            [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json_invalid"}]
        ) from exc


def build_router(
    settings: DetectorSettings, bus: EventBus, redis: Redis, clock: Clock
) -> APIRouter:
    router = APIRouter(tags=["ingest"])
    limit = settings.max_body_bytes
    too_large = {"detail": f"body larger than {limit} bytes"}
    heartbeats = HeartbeatStore(redis)
    known_beats = {h.name for h in settings.heartbeats}

    async def accept(alerts: list[AlertRaised], source: str, **extra: Any) -> JSONResponse:
        if alerts:
            await bus.publish_many(alerts)
        ALERTS_INGESTED.labels(source).inc(len(alerts))
        return JSONResponse(
            {"accepted": len(alerts), "event_ids": [a.event_id for a in alerts], **extra},
            status_code=202,
        )

    @router.post("/api/v1/alerts", status_code=202)
    async def post_alerts(request: Request) -> JSONResponse:
        """Ingest one AlertRaised JSON object or a list; 202 once all are on the stream."""
        try:
            body = await _read(request, limit)
            alerts = parse_alerts(body, source=AlertSource.API, producer="detector")
        except _TooLarge:
            return JSONResponse(too_large, status_code=413)
        except IngestError as exc:
            return JSONResponse({"detail": exc.errors}, status_code=422)
        return await accept(alerts, "api")

    def external(
        source: str,
        mapper: Callable[[Any, list[str], datetime], tuple[list[AlertRaised], int]],
    ) -> Callable[[Request], Any]:
        async def receive(request: Request) -> JSONResponse:
            try:
                body = await _read(request, limit)
                alerts, truncated = mapper(_json(body), settings.service_labels, clock.now())
            except _TooLarge:
                return JSONResponse(too_large, status_code=413)
            except PayloadError as exc:
                return JSONResponse({"detail": exc.errors}, status_code=422)
            if truncated:
                # The sender dropped these before sending; they come back on its next notify.
                log.warning("%s webhook: %d alerts truncated by the sender", source, truncated)
                TRUNCATED.labels(source).inc(truncated)
            return await accept(alerts, source, truncated_alerts=truncated)

        return receive

    router.add_api_route(
        "/webhooks/alertmanager",
        external("alertmanager", from_alertmanager),
        methods=["POST"],
        status_code=202,
        summary="Alertmanager webhook v4: one AlertRaised per alert",
    )
    router.add_api_route(
        "/webhooks/grafana",
        external("grafana", from_grafana),
        methods=["POST"],
        status_code=202,
        summary="Grafana unified-alerting webhook: one AlertRaised per alert",
    )

    async def post_pagerduty(request: Request) -> JSONResponse:
        """PagerDuty Events API v2, answered the way PagerDuty answers."""
        try:
            body = await _read(request, limit)
        except _TooLarge:
            return JSONResponse(
                {"status": "invalid event", "message": "Request too large", "errors": []},
                status_code=413,
            )
        try:
            event = pagerduty.parse(_json(body), settings.pagerduty_routing_keys)
        except (PayloadError, pagerduty.PagerDutyError) as exc:
            errors = exc.errors if isinstance(exc, pagerduty.PagerDutyError) else [str(exc)]
            return JSONResponse(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status_code=400,
            )
        dedup_key = event.dedup_key or uuid.uuid4().hex
        context_key = _PD_CONTEXT.format(dedup_key)
        now = clock.now()
        if event.action == "trigger":
            alert = pagerduty.to_alert(event, dedup_key, now)
            await redis.set(
                context_key, json.dumps([alert.service, alert.check]), ex=_PD_CONTEXT_TTL_S
            )
            await accept([alert], "pagerduty")
        elif event.action == "resolve":
            raw = await redis.get(context_key)
            known: tuple[str, str] | None = None
            if raw:
                service, check = json.loads(raw)
                known = (str(service), str(check))
            await accept([pagerduty.to_alert(event, dedup_key, now, known)], "pagerduty")
        else:
            await _acknowledge(bus, redis, dedup_key)
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status_code=202,
        )

    for path in ("/webhooks/pagerduty", "/webhooks/pagerduty/v2/enqueue"):
        router.add_api_route(
            path,
            post_pagerduty,
            methods=["POST"],
            status_code=202,
            summary="PagerDuty Events API v2 (trigger, acknowledge, resolve)",
        )

    async def heartbeat(name: str) -> JSONResponse:
        """A dead man's switch calls in; silence longer than its period raises an alert."""
        if name not in known_beats:
            return JSONResponse(
                {"detail": [{"loc": ["path", "name"], "msg": f"unknown heartbeat {name!r}"}]},
                status_code=404,
            )
        now = clock.now()
        await heartbeats.beat(name, now)
        return JSONResponse({"name": name, "received_at": now.isoformat()}, status_code=200)

    router.add_api_route(
        "/api/v1/heartbeats/{name}",
        heartbeat,
        methods=["POST", "GET"],
        summary="Heartbeat of a configured sender (dead man's switch)",
    )
    return router


async def _acknowledge(bus: EventBus, redis: Redis, dedup_key: str) -> None:
    """An acknowledge in PagerDuty acknowledges our incident of that alert, when there is one
    (triage indexes open incidents by fingerprint); otherwise there is nothing to record."""
    incident = await redis.get(f"jarvis:triage:fp:{pagerduty.fingerprint(dedup_key)}")
    if not incident:
        log.info("PagerDuty acknowledge for %s: no open incident", dedup_key)
        return
    incident_id = as_text(incident)
    await bus.publish(
        IncidentAcknowledged(
            producer="detector",
            incident_id=incident_id,
            correlation_id=incident_id,
            by="pagerduty",
        )
    )
