"""What every service is built from, and the HTTP app that hosts one or all of them.

A `Runtime` holds the connections a composition root creates (nothing connects at
import time). Each service's `main.build(runtime)` returns a `Service`: its HTTP routes,
its stream consumers, its background loops and its health. `build_app` hosts any number
of services in one FastAPI app with `/health` and `/metrics`, starts their consumers
(shared/stream_consumer.py), and trims the streams they read (shared/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import Receive, Scope, Send

from shared.access import AccessMiddleware, AccessPolicy
from shared.asyncapi import asyncapi_document
from shared.bus import EventBus
from shared.clock import Clock, SystemClock
from shared.consumer import BatchHandler, Handler
from shared.envelope import AlertAdmission
from shared.keys import Signer, load_or_create_secret
from shared.redis_client import RedisLocation, connect, follow_master, is_unavailable
from shared.retention import trim_forever
from shared.retry import backoff_delay
from shared.settings import Settings
from shared.stream_consumer import StreamConsumer
from shared.streams import ALERTS, StreamSpec
from shared.tasks import cancel_all

__all__ = [
    "App",
    "Direct",
    "DirectHandler",
    "Hook",
    "Runtime",
    "Service",
    "build_app",
    "create_runtime",
]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
Hook = Callable[[], Awaitable[None]]
# A route served without FastAPI's routing, dependencies and response handling (`Direct`).
DirectHandler = Callable[[Request], Awaitable[Response]]


@dataclass
class Runtime:
    """Connections and settings shared by the services of one process."""

    settings: Settings
    redis: Redis
    clock: Clock
    instance: str

    @functools.cached_property
    def access(self) -> AccessPolicy:
        """Who may use the HTTP routes of this process (`shared.access`)."""
        return AccessPolicy.of(self.settings)

    @functools.cached_property
    def approval_signer(self) -> Signer:
        """Signs approvals (recorder) and checks them (remediator)."""
        key = self.settings.approval_key
        return Signer(key or load_or_create_secret(self.settings.data_dir / "secrets/approval.key"))

    @functools.cached_property
    def envelope_signer(self) -> Signer:
        """Seals the alerts the detector stamped; every consumer of jarvis:alerts checks it."""
        key = self.settings.envelope_key
        return Signer(key or load_or_create_secret(self.settings.data_dir / "secrets/envelope.key"))

    @functools.cached_property
    def alert_admission(self) -> AlertAdmission:
        """What every reader of jarvis:alerts makes of an entry (`shared.envelope`)."""
        return AlertAdmission(self.envelope_signer)

    def bus(self, producer: str) -> EventBus:
        return EventBus(self.redis, producer=producer, seal=self.alert_admission.seal)

    def consume(
        self,
        spec: StreamSpec,
        group: str,
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        max_records: int | None = None,
    ) -> StreamConsumer:
        """Read `spec` through consumer group `group` (one per service, CONTRACT §2);
        `max_records` overrides the configured XREADGROUP COUNT for this consumer."""
        settings = self.settings.consumer
        if max_records is not None:
            settings = settings.model_copy(update={"max_records": max_records})
        return StreamConsumer(
            redis=self.redis,
            settings=settings,
            spec=spec,
            group=group,
            consumer=f"{group}-{self.instance}",
            handler=handler,
            batch_handler=batch_handler,
            admit=self.alert_admission if spec.key == ALERTS.key else None,
        )


@dataclass
class Service:
    """One service as the host sees it."""

    name: str
    router: APIRouter | None = None
    consumers: list[StreamConsumer] = field(default_factory=list)
    startup: list[Hook] = field(default_factory=list)
    background: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)
    health: HealthCheck | None = None
    # (method, path) → handler: hot routes answered ahead of FastAPI (`Direct`).
    # Each must also be a route of `router`, which documents it and serves it where
    # `Direct` does not (a root path); both must behave the same.
    direct: dict[tuple[str, str], DirectHandler] = field(default_factory=dict)


def create_runtime(
    settings: Settings,
    redis: str | RedisLocation | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """Create (not connect) the Redis client: of `redis` (a URL or a location), else of
    where the settings put it (`REDIS_URL` / `REDIS_SENTINELS`, `shared.redis_client`)."""
    location = RedisLocation(url=redis) if isinstance(redis, str) else redis
    location = location or settings.redis_location
    if location is None:
        raise ValueError("REDIS_URL: not set (only `jarvis-ir up` embeds a Redis server)")
    return Runtime(
        settings=settings,
        redis=connect(location),
        clock=clock or SystemClock(),
        instance=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
    )


async def _supervise(name: str, loop: Hook) -> None:
    """Run a background loop; restart it after an unexpected error instead of dying.
    Redis being unavailable (down, failing over) is an outage, not an error: one warning
    when it starts, no traceback, restarts with capped backoff while it lasts."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fresh = time.monotonic() - started > 10  # it had been running: a new incident
            failures = 1 if fresh else failures + 1
            if is_unavailable(exc):
                say = log.warning if failures == 1 else log.debug
                say("%s: background loop waits for Redis (retrying): %s", name, exc)
                await asyncio.sleep(backoff_delay(failures, 0.2, 5.0))
                continue
            log.exception("%s: background loop failed; restarting in 1 s", name)
            await asyncio.sleep(1.0)


async def _watch_groups(runtime: Runtime, consumers: list[StreamConsumer]) -> None:
    while True:
        await asyncio.sleep(runtime.settings.consumer.group_check_s)
        for consumer in consumers:
            try:
                await consumer.heal()
            except Exception as exc:  # Redis may be restarting: try again next round
                log.debug("group check of %s failed: %s", consumer.group, exc)


def _redis_failed(request: Request, exc: RedisError) -> JSONResponse:
    """503 with Retry-After while Redis is down, restarting or failing over: nothing was
    accepted, and senders (Alertmanager, PagerDuty clients) retry a 5xx."""
    if is_unavailable(exc):
        log.debug("%s %s: Redis unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "Redis is unavailable; try again"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    log.error("%s %s: Redis error", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


class Direct:
    """Serves a few hot routes (alert ingest) as plain ASGI, ahead of FastAPI: its routing,
    dependency injection, exception middleware and telemetry cost more CPU than the work
    of a one-alert request. `App` hands it exactly those (method, path) pairs.

    The same `AccessMiddleware` runs first, and errors are answered by the same
    `ServerErrorMiddleware` (a 500, the exception re-raised for the server to log). A
    handler gets a plain `Request` and returns its response; the exceptions FastAPI
    handles for its routes are answered the same way here: HTTPException (a guard's
    401/415) by FastAPI's own handler, RedisError as `build_app` does (503 + Retry-After
    while Redis is unavailable). Not done here: FastAPI's native OpenTelemetry spans and
    metrics, which only exist when an OpenTelemetry SDK is configured in the process
    (this program configures none)."""

    def __init__(self, routes: dict[tuple[str, str], DirectHandler], policy: AccessPolicy) -> None:
        self.routes = routes
        self._stack = ServerErrorMiddleware(AccessMiddleware(self._serve, policy=policy))

    def serves(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and (scope["method"], scope["path"]) in self.routes
            and not scope.get("root_path")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._stack(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.routes[scope["method"], scope["path"]](request)
        except HTTPException as exc:
            response = await http_exception_handler(request, exc)
        except RedisError as exc:
            response = _redis_failed(request, exc)
        await response(scope, receive, send)


class App(FastAPI):
    """The FastAPI app, with `Direct` in front for the routes it serves."""

    direct: Direct | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if direct is not None and direct.serves(scope):
            scope["app"] = self
            await direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _freeze_startup_objects() -> None:
    """Collect the garbage of start-up once (migrations, compiled statements, settings),
    then keep what survived out of the collector's later full passes (for a process that
    is the server, `jarvis-ir serve`/`up`: not for apps hosted in a test). Without it,
    every full pass scanned all of it: 15-25 ms each in the recorder during
    bench.pipeline's latency run (gc.callbacks)."""
    gc.collect()
    gc.freeze()


def build_app(
    runtime: Runtime,
    services: list[Service],
    title: str = "Jarvis Responder",
    *,
    freeze_after_start: bool = False,
) -> FastAPI:
    """One FastAPI app hosting `services` on one Redis client."""
    consumers = [c for s in services for c in s.consumers]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for service in services:
            for hook in service.startup:
                await hook()
        for consumer in consumers:
            await consumer.prepare()
        if freeze_after_start:
            _freeze_startup_objects()
        for consumer in consumers:
            consumer.start()
        tasks = [
            asyncio.create_task(_supervise(s.name, loop), name=f"{s.name}-bg")
            for s in services
            for loop in s.background
        ]
        tasks.append(asyncio.create_task(follow_master(runtime.redis), name="follow-master"))
        if consumers:
            tasks.append(asyncio.create_task(_watch_groups(runtime, consumers)))
            streams = [c.spec.key for c in consumers]
            trim = trim_forever(runtime.redis, streams, runtime.settings.consumer)
            tasks.append(asyncio.create_task(trim, name="trim-streams"))
        log.info("started: %s", ", ".join(s.name for s in services))
        try:
            yield
        finally:
            await cancel_all(tasks)
            # Each stops reading, then waits (up to 10 s) for its handlers in flight.
            await asyncio.gather(*(c.stop(grace_s=10.0) for c in consumers))
            for service in services:
                for hook in service.shutdown:
                    await hook()
            await runtime.redis.aclose()

    app = App(title=title, lifespan=lifespan, version="0.1.0")
    app.add_middleware(AccessMiddleware, policy=runtime.access)
    direct = {key: handler for s in services for key, handler in s.direct.items()}
    if direct:
        app.direct = Direct(direct, runtime.access)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each bad field. The offending input is not echoed back: it may not
        even be representable as JSON (Infinity), which made FastAPI's own handler fail."""
        errors = [
            {"loc": list(err["loc"]), "msg": str(err["msg"]), "type": str(err["type"])}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(RedisError)
    async def redis_failed(request: Request, exc: RedisError) -> JSONResponse:
        """503 with Retry-After while Redis is down (`_redis_failed`)."""
        return _redis_failed(request, exc)

    @app.get("/health", tags=["ops"])
    async def health(response: Response) -> dict[str, Any]:
        """Liveness and the status of each service's dependencies."""
        report: dict[str, Any] = {"status": "ok", "services": {}}
        try:
            await runtime.redis.ping()
            report["redis"] = "ok"
        except Exception as exc:
            report["redis"] = f"error: {exc}"
            report["status"] = "degraded"
        for service in services:
            entry: dict[str, Any] = {"status": "ok"}
            if service.health:
                try:
                    entry = await service.health()
                except Exception as exc:
                    entry = {"status": "error", "error": str(exc)}
            report["services"][service.name] = entry
            if entry.get("status") != "ok":
                report["status"] = "degraded"
        if report["status"] != "ok":
            response.status_code = 503
        return report

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> dict[str, Any]:
        """The event streams as an AsyncAPI 3.0 document."""
        return asyncapi_document()

    for service in services:
        if service.router is not None:
            app.include_router(service.router)
    return app
