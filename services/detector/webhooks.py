"""HTTP ingress of the detector: our own JSON, Alertmanager, PagerDuty, Grafana and heartbeats.

Every route checks who sends (`shared.access.ingest_guard`: the bearer token of the operator
or of a named integration once a token is configured; PagerDuty by its routing key), reads
the body under a size limit, validates all of it (a batch is accepted whole or refused with
the bad fields named), gives each alert the server's envelope (`shared.envelope`: what the
sender says is a claim), puts every alert on `jarvis:alerts`, and only then answers 2xx.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio import Redis

from services.detector import pagerduty
from services.detector.budget import ServiceBudget
from services.detector.external import PayloadError, from_alertmanager, from_grafana
from services.detector.heartbeat import HeartbeatStore
from services.detector.ingest import IngestError, parse_alerts
from shared.access import (
    AccessPolicy,
    bearer_credentials,
    ingest_guard,
    ingest_sender,
    require_json,
)
from shared.bus import EventBus, as_text
from shared.clock import Clock
from shared.envelope import own, owned_fingerprint, pagerduty_integration
from shared.events import AlertRaised, IncidentAcknowledged
from shared.runtime import DirectHandler
from shared.settings import DetectorSettings

__all__ = ["ALERTS_INGESTED", "Ingress", "build_router"]

log = logging.getLogger(__name__)

ALERTS_INGESTED = Counter(
    "jarvis_alerts_ingested_total", "Alerts accepted onto jarvis:alerts, by source.", ["source"]
)
TRUNCATED = Counter(
    "jarvis_detector_truncated_alerts_total",
    "Alerts a sender reported as truncated from its webhook (not received).",
    ["source"],
)

# (integration, dedup_key) → [service, check] of its trigger
_PD_CONTEXT = "jarvis:detector:pagerduty:{}:{}"
_ERRORS = {
    401: {"description": "Missing or wrong bearer token."},
    403: {"description": "Sent by a browser from another site."},
    413: {"description": "Body too large."},
    415: {"description": "The body is not application/json."},
    422: {"description": "Invalid body; each bad field named."},
    429: {"description": "Too many services the stack does not know."},
}
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


@dataclass(frozen=True)
class Ingress:
    """The detector's routes: all of them for FastAPI (the OpenAPI document, and any request
    `Direct` does not take), and the ingest routes again for `shared.runtime.Direct`, which
    serves them without FastAPI's per-request machinery; both run the same handlers."""

    router: APIRouter
    direct: dict[tuple[str, str], DirectHandler]


def build_router(
    settings: DetectorSettings,
    bus: EventBus,
    redis: Redis,
    clock: Clock,
    access: AccessPolicy,
    budget: ServiceBudget,
) -> Ingress:
    router = APIRouter(tags=["ingest"])
    limit = settings.max_body_bytes
    too_large = {"detail": f"body larger than {limit} bytes"}
    heartbeats = HeartbeatStore(redis)
    known_beats = {h.name for h in settings.heartbeats}
    # Who sends: the name of the integration whose token came with the request.
    sender = Depends(ingest_guard(access))

    async def accept(alerts: list[AlertRaised], source: str, **extra: Any) -> Response:
        refused = await budget.over((a.service for a in alerts), clock.now())
        if refused:
            return JSONResponse({"detail": budget.message(refused)}, status_code=429)
        if alerts:
            await bus.publish_together(alerts)
        ALERTS_INGESTED.labels(source).inc(len(alerts))
        if extra:
            return JSONResponse(
                {"accepted": len(alerts), "event_ids": [a.event_id for a in alerts], **extra},
                status_code=202,
            )
        return _accepted([a.event_id for a in alerts])

    async def own_alerts(request: Request, integration: str) -> Response:
        try:
            body = await _read(request, limit)
            alerts = parse_alerts(body, integration=integration, now=clock.now())
        except _TooLarge:
            return JSONResponse(too_large, status_code=413)
        except IngestError as exc:
            return JSONResponse({"detail": exc.errors}, status_code=422)
        return await accept(alerts, "api")

    @router.post("/api/v1/alerts", status_code=202, responses=_ERRORS)  # type: ignore[arg-type]
    async def post_alerts(request: Request, integration: str = sender) -> Response:
        """Ingest one AlertRaised JSON object or a list; 202 once all are on the stream.
        The envelope (`event_id`, `incident_id`, `source`, …) is the server's."""
        return await own_alerts(request, integration)

    def direct(handler: Callable[[Request, str], Awaitable[Response]]) -> DirectHandler:
        """`handler` served by `shared.runtime.Direct`: what the `sender` dependency does,
        then the same handler as the route's."""

        async def serve(request: Request) -> Response:
            token = bearer_credentials(request.headers)
            return await handler(request, ingest_sender(access, token, request.headers))

        return serve

    def routed(handler: Callable[[Request, str], Awaitable[Response]]) -> Callable[..., Any]:
        """`handler` as a FastAPI route, the sender checked by the `sender` dependency."""

        async def route(request: Request, integration: str = sender) -> Response:
            return await handler(request, integration)

        return route

    routes: dict[tuple[str, str], DirectHandler] = {("POST", "/api/v1/alerts"): direct(own_alerts)}

    def external(
        source: str,
        mapper: Callable[[Any, list[str], datetime], tuple[list[AlertRaised], int]],
    ) -> Callable[[Request, str], Awaitable[Response]]:
        async def receive(request: Request, integration: str) -> Response:
            try:
                body = await _read(request, limit)
                mapped, truncated = mapper(_json(body), settings.service_labels, clock.now())
            except _TooLarge:
                return JSONResponse(too_large, status_code=413)
            except PayloadError as exc:
                return JSONResponse({"detail": exc.errors}, status_code=422)
            except ValidationError as exc:
                return JSONResponse({"detail": PayloadError.from_validation(exc).errors}, 422)
            if truncated:
                # The sender dropped these before sending; they come back on its next notify.
                log.warning("%s webhook: %d alerts truncated by the sender", source, truncated)
                TRUNCATED.labels(source).inc(truncated)
            alerts = [own(a, integration=integration) for a in mapped]
            return await accept(alerts, source, truncated_alerts=truncated)

        return receive

    for path, source, mapper, what in (
        ("/webhooks/alertmanager", "alertmanager", from_alertmanager, "Alertmanager webhook v4"),
        ("/webhooks/grafana", "grafana", from_grafana, "Grafana unified-alerting webhook"),
    ):
        handler = external(source, mapper)
        routes["POST", path] = direct(handler)
        router.add_api_route(
            path,
            routed(handler),
            methods=["POST"],
            status_code=202,
            responses=_ERRORS,  # type: ignore[arg-type]
            summary=f"{what}: one AlertRaised per alert",
        )

    async def post_pagerduty(request: Request) -> JSONResponse:
        """PagerDuty Events API v2, answered the way PagerDuty answers. Its senders cannot set
        headers: once a token is configured, the routing key must be one of
        `detector.pagerduty_routing_keys`."""
        if access.locked and not settings.pagerduty_routing_keys:
            return _pd_invalid(
                403,
                "PagerDuty events are refused: JARVIS_API_TOKEN is set and no routing key is "
                "configured (detector.pagerduty_routing_keys)",
            )
        try:
            require_json(request)
            body = await _read(request, limit)
        except HTTPException as exc:
            return _pd_invalid(exc.status_code, str(exc.detail))
        except _TooLarge:
            return _pd_invalid(413, "Request too large")
        try:
            event = pagerduty.parse(_json(body), settings.pagerduty_routing_keys)
        except (PayloadError, pagerduty.PagerDutyError) as exc:
            errors = exc.errors if isinstance(exc, pagerduty.PagerDutyError) else [str(exc)]
            return _pd_invalid(400, "Event object is invalid", errors)
        integration = pagerduty_integration(event.routing_key)
        dedup_key = event.dedup_key or uuid.uuid4().hex
        context_key = _PD_CONTEXT.format(integration, dedup_key)
        now = clock.now()
        try:
            if event.action == "acknowledge":
                fingerprint = owned_fingerprint(integration, pagerduty.fingerprint(dedup_key))
                await _acknowledge(bus, redis, fingerprint, dedup_key)
                alert = None
            elif event.action == "trigger":
                alert = own(pagerduty.to_alert(event, dedup_key, now), integration=integration)
                await redis.set(
                    context_key, json.dumps([alert.service, alert.check]), ex=_PD_CONTEXT_TTL_S
                )
            else:
                raw = await redis.get(context_key)
                known: tuple[str, str] | None = None
                if raw:
                    service, check = json.loads(raw)
                    known = (str(service), str(check))
                alert = own(
                    pagerduty.to_alert(event, dedup_key, now, known), integration=integration
                )
        except ValidationError as exc:
            return _pd_invalid(400, "Event object is invalid", [str(exc)])
        if alert is not None:
            answer = await accept([alert], "pagerduty")
            if answer.status_code != 202:
                return _pd_invalid(
                    answer.status_code, "Event refused", [bytes(answer.body).decode()]
                )
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status_code=202,
        )

    for path in ("/webhooks/pagerduty", "/webhooks/pagerduty/v2/enqueue"):
        routes["POST", path] = post_pagerduty
        router.add_api_route(
            path,
            post_pagerduty,
            methods=["POST"],
            status_code=202,
            summary="PagerDuty Events API v2 (trigger, acknowledge, resolve)",
        )

    async def heartbeat(name: str, integration: str = sender) -> JSONResponse:
        """A dead man's switch calls in; silence longer than its period raises an alert."""
        del integration  # any integration may call in, as long as it is one
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
        methods=["POST"],
        responses=_ERRORS,  # type: ignore[arg-type]
        summary="Heartbeat of a configured sender (dead man's switch)",
    )
    return Ingress(router, routes)


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _accepted(event_ids: list[str]) -> Response:
    """The 202 of `{"accepted": n, "event_ids": [...]}`, the bytes JSONResponse would send,
    without building a JSON encoder per answer (ids are UUIDs: ASCII, nothing to escape)."""
    body = f'{{"accepted":{len(event_ids)},"event_ids":{_COMPACT.encode(event_ids)}}}'
    return Response(body.encode(), status_code=202, media_type="application/json")


def _pd_invalid(status: int, message: str, errors: list[str] | None = None) -> JSONResponse:
    body = {"status": "invalid event", "message": message, "errors": errors or [message]}
    return JSONResponse(body, status_code=status)


async def _acknowledge(bus: EventBus, redis: Redis, fingerprint: str, dedup_key: str) -> None:
    """An acknowledge in PagerDuty acknowledges our incident of that alert, when there is one
    (triage indexes open incidents by fingerprint); otherwise there is nothing to record."""
    incident = await redis.get(f"jarvis:triage:fp:{fingerprint}")
    if not incident:
        log.info("PagerDuty acknowledge for %r: no open incident", dedup_key)
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
