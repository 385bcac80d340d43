"""The live side of the recorder: server-sent events of timeline and incident changes, and
the operator page that shows them.

The stream polls the database (so it sees what any replica recorded) and is woken at
once when this process records something. Rows are re-read with a small overlap, since
transactions may commit out of the order of their timestamps; what was sent is
remembered, so nothing is sent twice and nothing is missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from services.recorder.api import NextEscalations
from services.recorder.db import as_utc
from services.recorder.page import make_page_router
from services.recorder.queries import Reader, TimelineItem
from services.recorder.schemas import IncidentOut, TimelineEntry
from shared.events import utcnow

__all__ = ["Notifier", "make_live_router"]

_OVERLAP = timedelta(seconds=5)
_HEARTBEAT_S = 15.0


class Notifier:
    """Wakes the live streams of this process when something was recorded."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait(self, seconds: float) -> None:
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


def _frame(kind: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


async def _events(
    reader: Reader,
    notifier: Notifier,
    poll_s: float,
    incident_id: str | None,
    next_escalations: NextEscalations,
) -> AsyncIterator[str]:
    cursor = utcnow() - _OVERLAP
    sent_rows: dict[str, datetime] = {}
    sent_incidents: dict[tuple[str, datetime], datetime] = {}
    yield "retry: 2000\n: connected\n\n"
    quiet = 0.0
    while True:
        newest = cursor
        for row in await reader.recorded_since(cursor - _OVERLAP, incident_id):
            at = as_utc(row.recorded_at)
            newest = max(newest, at)
            if row.event_id in sent_rows:
                continue
            sent_rows[row.event_id] = at
            entry = TimelineEntry.of(TimelineItem(row, None))
            yield _frame("timeline", entry.model_dump_json(), row.event_id)
        changed = []
        for incident in await reader.updated_since(cursor - _OVERLAP):
            if incident_id and incident.id != incident_id:
                continue
            at = as_utc(incident.updated_at)
            newest = max(newest, at)
            if (incident.id, at) in sent_incidents:
                continue
            sent_incidents[(incident.id, at)] = at
            changed.append(incident)
        pending = await next_escalations([i.id for i in changed if i.status != "resolved"])
        for incident in changed:
            out = IncidentOut.of(incident, pending.get(incident.id))
            yield _frame("incident", out.model_dump_json())
        cursor = newest
        horizon = cursor - 2 * _OVERLAP
        sent_rows = {k: v for k, v in sent_rows.items() if v >= horizon}
        sent_incidents = {k: v for k, v in sent_incidents.items() if v >= horizon}
        started = asyncio.get_running_loop().time()
        await notifier.wait(poll_s)
        quiet += asyncio.get_running_loop().time() - started
        if quiet >= _HEARTBEAT_S:
            quiet = 0.0
            yield ": keep-alive\n\n"


def make_live_router(
    reader: Reader,
    notifier: Notifier,
    poll_s: float,
    next_escalations: NextEscalations,
    max_clients: int,
) -> APIRouter:
    router = APIRouter()
    router.include_router(make_page_router())
    # Each stream polls the database: a cap keeps many clients from costing the CPU.
    clients = 0

    async def counted(frames: AsyncIterator[str]) -> AsyncIterator[str]:
        nonlocal clients
        try:
            async for frame in frames:
                yield frame
        finally:
            clients -= 1

    @router.get(
        "/api/v1/stream",
        tags=["timeline"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}},
            503: {"description": "recorder.stream_max_clients streams are open already."},
        },
    )
    async def stream(
        request: Request,
        incident_id: str | None = Query(default=None, min_length=1, max_length=64),
    ) -> StreamingResponse:
        """Server-sent events: `timeline` (a new timeline entry, JSON as in /timeline — an
        incident's, or a silence's), and `incident` (an incident changed, JSON as in
        /incidents), from now on. At most
        `recorder.stream_max_clients` at once (503 beyond, with Retry-After)."""
        del request
        nonlocal clients
        if clients >= max_clients:
            raise HTTPException(
                503,
                f"{max_clients} live streams are open already (recorder.stream_max_clients)",
                headers={"Retry-After": "10"},
            )
        clients += 1
        return StreamingResponse(
            counted(_events(reader, notifier, poll_s, incident_id, next_escalations)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
