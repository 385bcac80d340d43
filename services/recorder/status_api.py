"""The status page over HTTP: `GET <path>` (HTML), `GET <path>/feed.atom`, `GET
/api/v1/status` (JSON), all public and read-only; and the one way to publish on it,
`POST /api/v1/incidents/{id}/status-updates` (bearer token, like every write).

The read routes can also be served on a port of their own (`recorder.status_page.port`),
with nothing else on it: expose that port, keep the API's port internal.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from services.recorder.api import IncidentId
from services.recorder.commands import Commands, event_id
from services.recorder.queries import Reader
from services.recorder.schemas import Accepted
from services.recorder.security import limited_body_route
from services.recorder.status import PublicStatus, component_names, public_status
from services.recorder.status_render import render_atom, render_html
from shared.clock import Clock
from shared.events import StatusUpdatePosted
from shared.settings import StatusPageSettings

__all__ = ["StatusServer", "make_status_read_router", "make_status_write_router"]


class StatusUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["investigating", "identified", "monitoring", "resolved"] = Field(
        description="The incident's public state."
    )
    text: str = Field(min_length=1, max_length=4000, description="What the public reads.")
    by: str = Field(
        default="communications lead", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$"
    )


def make_status_read_router(
    reader: Reader, page: StatusPageSettings, stack: list[str], clock: Clock
) -> APIRouter:
    router = APIRouter(tags=["status page"])
    components = component_names(page.components, stack)

    async def current() -> PublicStatus:
        now = clock.now()
        incidents = await reader.public_candidates(now - timedelta(days=page.history_days))
        rows = await reader.events_of_type("StatusUpdatePosted", [i.id for i in incidents])
        updates = [(r.event_id, r.incident_id or "", r.payload, r.occurred_at) for r in rows]
        return public_status(
            title=page.title, now=now, components=components, incidents=incidents, updates=updates
        )

    def urls(request: Request) -> tuple[str, str]:
        base = str(request.base_url).rstrip("/")
        return base + page.path, base + page.path + "/feed.atom"

    @router.get(page.path, response_class=HTMLResponse)
    async def status_page(request: Request) -> HTMLResponse:
        """The public status page: components and the published updates."""
        return HTMLResponse(render_html(await current(), urls(request)[1]))

    @router.get(
        page.path + "/feed.atom",
        response_class=Response,
        responses={200: {"content": {"application/atom+xml": {}}}},
    )
    async def status_feed(request: Request) -> Response:
        """The published updates as an Atom feed."""
        body = render_atom(await current(), *urls(request))
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    @router.get("/api/v1/status", response_model=PublicStatus)
    async def status_json() -> PublicStatus:
        """The status page as JSON."""
        return await current()

    return router


def make_status_write_router(
    commands: Commands, guard: Callable[..., Awaitable[None]], max_body_bytes: int
) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1",
        tags=["status page"],
        dependencies=[Depends(guard)],
        route_class=limited_body_route(max_body_bytes),
    )

    @router.post(
        "/incidents/{incident_id}/status-updates", status_code=202, response_model=Accepted
    )
    async def post_status_update(
        body: StatusUpdateIn,
        incident_id: str = IncidentId,
        idempotency_key: str | None = Header(default=None, max_length=128),
    ) -> Accepted:
        """Publish an update on the status page, as written (publishes StatusUpdatePosted)."""
        envelope = await commands.known_incident(incident_id)
        return await commands.publish(
            StatusUpdatePosted(
                event_id=event_id("status", incident_id, idempotency_key or str(uuid.uuid4())),
                status=body.status,
                text=body.text,
                by=body.by,
                **envelope,
            )
        )

    return router


class _Server(uvicorn.Server):
    """uvicorn inside the running process: the main server owns the signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StatusServer:
    """The status page alone on its own port, started and stopped with the recorder."""

    def __init__(self, router: APIRouter, host: str, port: int) -> None:
        app = FastAPI(title="status", docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(router)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="status-page")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
                raise RuntimeError("status page server stopped at start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
