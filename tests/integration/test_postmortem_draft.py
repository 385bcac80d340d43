"""The postmortem draft from a stand-in Ollama API on 127.0.0.1 (canned completions over
the real /api/tags and /api/generate protocol), and the fallback to the template at once
when Ollama is down, slow, lacks the model or answers nonsense."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.recorder.main import build as build_recorder
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.recorder_events import acked, alert, assigned, new_id

pytestmark = pytest.mark.integration


@dataclass
class FakeOllama:
    """Ollama's API as the recorder uses it; `completion` is what /api/generate answers."""

    completion: str = "{}"
    models: list[str] = field(default_factory=lambda: ["tinyllama:latest"])
    tags_delay: float = 0.0
    generate_delay: float = 0.0
    prompts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@contextmanager
def fake_ollama(ollama: FakeOllama) -> Iterator[FakeOllama]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: that is the point of the slow tests

        def do_GET(self) -> None:
            time.sleep(ollama.tags_delay)
            self._answer({"models": [{"name": n, "model": n} for n in ollama.models]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ollama.prompts.append(body)
            time.sleep(ollama.generate_delay)
            self._answer(
                {
                    "model": body["model"],
                    "created_at": "2026-01-01T00:00:00Z",
                    "response": ollama.completion,
                    "done": True,
                }
            )

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    ollama.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ollama
    finally:
        server.shutdown()
        server.server_close()


async def _incident(client: httpx.AsyncClient, runtime: Any) -> tuple[str, list[str]]:
    incident = new_id()
    cause = alert("backend")
    events = [cause, assigned(cause, incident, "P1"), acked(incident, minute=10)]
    await runtime.bus("test").publish_many(events)

    async def stored() -> list[str] | None:
        answer = await client.get(f"/api/v1/incidents/{incident}/timeline")
        ids = [e["event_id"] for e in answer.json()] if answer.status_code == 200 else []
        return ids if len(ids) == 3 else None

    return incident, await eventually(stored)


def _settings(make: Callable[..., Settings], tmp: Any, url: str, **draft: Any) -> Settings:
    return make(
        database_url=f"sqlite+aiosqlite:///{tmp / 'recorder.sqlite3'}",
        ollama_url=url,
        recorder={"postmortem_draft": {"enabled": True, "model": "tinyllama", **draft}},
    )


async def test_the_draft_is_grounded_cited_marked_and_escaped(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    with fake_ollama(FakeOllama()) as ollama:
        settings = _settings(make_settings, tmp_path, ollama.url)
        async with running(settings, [build_recorder]) as (client, runtime):
            incident, (alert_id, severity_id, ack_id) = await _incident(client, runtime)
            ollama.completion = json.dumps(
                {
                    "executive_summary": [
                        {
                            "text": "The backend failed its health check; P1 declared.",
                            "events": [alert_id, severity_id],
                        },
                        {"text": "Invented outage of the billing system.", "events": ["nope"]},
                    ],
                    "root_cause": [
                        {
                            "text": "# Hacked <script>alert(1)</script> [x](http://evil)",
                            "events": [severity_id],
                        }
                    ],
                    "went_well": [{"text": "Acknowledged in 10 minutes.", "events": [ack_id]}],
                    "could_be_improved": [],
                }
            )
            text = (await client.get(f"/api/v1/incidents/{incident}/postmortem")).text

    (request,) = ollama.prompts
    assert request["model"] == "tinyllama"
    assert request["stream"] is False
    assert request["format"]["required"] == [
        "executive_summary",
        "root_cause",
        "went_well",
        "could_be_improved",
    ]
    for event_id in (alert_id, severity_id, ack_id):
        assert event_id in request["prompt"]  # grounded in the recorded timeline
    head, _, template = text.partition("## Executive Summary\n")
    assert "## Draft by the local model (tinyllama) — not reviewed" in head
    assert "**DRAFT.**" in head
    assert f"(events: `{alert_id}`, `{severity_id}`)" in head
    assert "Acknowledged in 10 minutes\\." in head
    assert "billing" not in head  # cited nothing of the timeline: left out, and said so
    assert "1 statement(s) citing no event of this timeline were left out" in head
    assert "<script>" not in text
    assert "\\# Hacked \\<script\\>" in head
    assert "\\[x\\]\\(http://evil\\)" in head
    assert "### What Could Be Improved (draft)\n\n- _nothing grounded in the timeline_" in head
    assert "## Incident Details" in template  # the template follows the draft


@pytest.mark.parametrize(
    ("case", "ollama", "why"),
    [
        ("down", None, "Ollama: ConnectError"),
        ("slow", FakeOllama(generate_delay=3.0), "did not answer within 0.5 s"),
        ("hung", FakeOllama(tags_delay=3.0), "Ollama: ReadTimeout"),
        ("no model", FakeOllama(models=["llama3:8b"]), "Ollama has no model 'tinyllama'"),
        ("nonsense", FakeOllama(completion="Sure! Here is a postmortem..."), "cited nothing"),
    ],
)
async def test_without_a_healthy_model_the_template_comes_at_once(
    make_settings: Callable[..., Settings],
    tmp_path: Any,
    case: str,
    ollama: FakeOllama | None,
    why: str,
) -> None:
    with ExitStack() as stack:
        if ollama is None:  # a stand-in started and stopped: nothing listens at its address
            with fake_ollama(FakeOllama()) as gone:
                url = gone.url
        else:
            url = stack.enter_context(fake_ollama(ollama)).url
        settings = _settings(make_settings, tmp_path, url, timeout_s=0.5, health_timeout_s=0.3)
        async with running(settings, [build_recorder]) as (client, runtime):
            incident, _ = await _incident(client, runtime)
            started = time.monotonic()
            answer = await client.get(f"/api/v1/incidents/{incident}/postmortem")
            took = time.monotonic() - started
    assert answer.status_code == 200
    assert took < 1.5, f"{case}: the fallback took {took:.2f} s"
    assert "Draft by the local model" not in answer.text
    assert "_No draft by the local model: " in answer.text
    assert why in answer.text, answer.text[:600]
    assert "## Executive Summary" in answer.text
    assert "## Incident Timeline" in answer.text


async def test_drafts_off_by_default_leave_the_template_untouched(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    async with running(settings, [build_recorder]) as (client, runtime):
        incident, _ = await _incident(client, runtime)
        text = (await client.get(f"/api/v1/incidents/{incident}/postmortem")).text
    assert "draft" not in text.lower()
    assert text.startswith(f"# Post-Incident Review: {incident}")
