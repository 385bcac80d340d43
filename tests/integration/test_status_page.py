"""The public status page, its JSON and its Atom feed (parsed back by feedparser): component
states derived from open incidents, only what the Communications Lead published, escaped,
and nothing from the internal timeline — also when served alone on its own port."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import feedparser
import httpx
import pytest

from services.recorder.main import build as build_recorder
from shared.events import Event, IncidentResolved, NoteAdded
from shared.runtime import Runtime
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.recorder_events import alert, assigned, new_id

pytestmark = pytest.mark.integration

TOKEN = "cl-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "SECRET-internal"
HOSTILE = "<script>alert(1)</script>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(runtime: Runtime, client: httpx.AsyncClient, *events: Event) -> None:
    await runtime.bus("test").publish_many(events)

    async def stored() -> bool:
        for e in events:
            answer = await client.get(f"/api/v1/incidents/{e.incident_id}/timeline")
            if answer.status_code != 200 or e.event_id not in answer.text:
                return False
        return True

    await eventually(stored)


async def test_the_status_page_shows_only_what_was_published_escaped_and_derived_states(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    port = _free_port()
    settings = make_settings(
        api_token=TOKEN,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'recorder.sqlite3'}",
        recorder={"status_page": {"port": port, "title": "Jarvis status"}},
    )
    async with running(settings, [build_recorder]) as (client, runtime):
        incident = new_id()
        cause = alert("backend").model_copy(update={"summary": f"{HOSTILE} {SECRET} summary"})
        opening = assigned(cause, incident, "P0", root_cause=f"{SECRET} cause").model_copy(
            update={
                "title": f"{HOSTILE} {SECRET} title",
                "services": ["backend", "postgres", "internal-x"],
            }
        )
        note = NoteAdded(incident_id=incident, author="ops", text=f"{SECRET} note")
        await _seed(runtime, client, opening, note)
        quiet = new_id()
        await _seed(runtime, client, assigned(alert("ollama"), quiet, "P3"))

        status = (await client.get("/api/v1/status")).json()
        states = {c["name"]: c["state"] for c in status["components"]}
        assert states["backend"] == "major_outage"
        assert states["postgres"] == "major_outage"
        assert states["ollama"] == "degraded_performance"
        assert states["redis"] == "operational"
        assert "internal-x" not in states  # not a component of the stack
        assert status["state"] == "major_outage"
        assert status["incidents"] == []  # nothing published yet: no incident shown

        url = f"/api/v1/incidents/{incident}/status-updates"
        text = "We see <b>errors</b> & timeouts on the API.\nNext update in 30 minutes."
        assert (
            await client.post(url, json={"status": "investigating", "text": text})
        ).status_code == 401
        bad = await client.post(url, json={"status": "fixed", "text": "x"}, headers=AUTH)
        assert bad.status_code == 422
        posted = await client.post(
            url, json={"status": "investigating", "text": text, "by": "pat"}, headers=AUTH
        )
        assert posted.status_code == 202, posted.text
        assert posted.json()["event_type"] == "StatusUpdatePosted"
        missing = await client.post(
            f"/api/v1/incidents/{new_id()}/status-updates",
            json={"status": "identified", "text": "x"},
            headers=AUTH,
        )
        assert missing.status_code == 404

        page = (await client.get("/status")).text
        assert "&lt;b&gt;errors&lt;/b&gt; &amp; timeouts" in page
        assert "<b>errors" not in page
        assert "Major outage" in page
        for internal in (SECRET, incident, "script", "summary"):
            assert internal not in page, internal
        (shown,) = (await client.get("/api/v1/status")).json()["incidents"]
        assert shown["id"] != incident
        assert shown["components"] == ["Backend API", "Database (PostgreSQL)"]
        assert [u["text"] for u in shown["updates"]] == [text]

        feed_answer = await client.get("/status/feed.atom")
        assert feed_answer.headers["content-type"].startswith("application/atom+xml")
        assert SECRET not in feed_answer.text
        assert incident not in feed_answer.text
        feed = feedparser.parse(feed_answer.content)
        assert not feed.bozo, feed.bozo_exception
        assert feed.feed.title == "Jarvis status"
        (entry,) = feed.entries
        assert entry.title == "Investigating: Backend API, Database (PostgreSQL)"
        assert entry.content[0].value == text
        assert entry.id == f"urn:uuid:{posted.json()['event_id']}"

        # Resolution: the component is operational again; the incident stays as recent.
        await _seed(runtime, client, IncidentResolved(incident_id=incident, note=f"{SECRET}"))
        await client.post(
            url, json={"status": "resolved", "text": "Fixed; all good."}, headers=AUTH
        )
        after = (await client.get("/api/v1/status")).json()
        states = {c["name"]: c["state"] for c in after["components"]}
        assert states["backend"] == "operational"
        assert after["incidents"][0]["status"] == "resolved"
        assert [u["status"] for u in after["incidents"][0]["updates"]] == [
            "resolved",
            "investigating",
        ]
        assert len(feedparser.parse((await client.get("/status/feed.atom")).content).entries) == 2

        # Alone on its own port: the page, its feed and its JSON — and nothing else.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as public:
            alone = await public.get("/status")
            assert alone.status_code == 200
            assert "Fixed; all good." in alone.text
            assert (await public.get("/status/feed.atom")).status_code == 200
            assert (await public.get("/api/v1/status")).json()["state"] == "degraded_performance"
            for internal in ("/api/v1/incidents", f"/api/v1/incidents/{incident}", "/docs", "/"):
                assert (await public.get(internal)).status_code == 404, internal
            write = await public.post(url, json={"status": "resolved", "text": "x"}, headers=AUTH)
            assert write.status_code in (404, 405)
    async with httpx.AsyncClient(timeout=2) as after_stop:
        with pytest.raises(httpx.ConnectError):
            await after_stop.get(f"http://127.0.0.1:{port}/status")
