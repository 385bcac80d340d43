"""Only operators make it act (issue 18), at the HTTP edge: every ingress wants a token once
one is set, PagerDuty its routing key; a browser on another site can neither post alerts nor
approve; reads need the token beyond loopback. Each test replays an attack that worked."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from services.recorder.main import build as build_recorder
from services.triage.main import build as build_triage
from shared.events import ActionRequested
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running
from tests.integration.detector_stubs import pagerduty_event

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789"
AM_TOKEN = "alertmanager-token-0123456789"
PD_KEY = "R0UTINGKEY0000000000000000000002"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

_AM_BODY = {
    "version": "4",
    "status": "firing",
    "alerts": [{"status": "firing", "labels": {"alertname": "Down", "service": "backend"}}],
}
_GRAFANA_BODY = {"alerts": [{"status": "firing", "labels": {"alertname": "Down"}}]}


def _pd(action: str, dedup_key: str, routing_key: str = PD_KEY) -> dict[str, Any]:
    return pagerduty_event(action, dedup_key, routing_key)


async def test_every_ingress_wants_the_token_once_one_is_set(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Finding 1: with JARVIS_API_TOKEN set, alerts, webhooks and heartbeats were open; a
    flood of `security: true` alerts paged level 3 once per alert."""
    settings = make_settings(
        api_token=TOKEN,
        detector={"heartbeats": [{"name": "backup", "period_s": 3600}]},
    )
    writes = [
        ("/api/v1/alerts", {"service": "backend", "security": True}),
        ("/webhooks/alertmanager", _AM_BODY),
        ("/webhooks/grafana", _GRAFANA_BODY),
        ("/api/v1/heartbeats/backup", None),
    ]
    async with running(settings, [build_detector]) as (client, _):
        for path, body in writes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                refused = await client.post(path, json=body, headers=headers)
                assert refused.status_code == 401, (path, headers, refused.text)
                assert refused.headers["www-authenticate"] == "Bearer"
        # The dead man's switch answers POST only (a GET is what a crawler or a link does).
        assert (await client.get("/api/v1/heartbeats/backup", headers=BEARER)).status_code == 405
        assert await redis.xlen("jarvis:alerts") == 0
        assert await redis.keys("jarvis:detector:heartbeat:*") == []
        for path, body in writes:
            allowed = await client.post(path, json=body, headers=BEARER)
            assert allowed.status_code in (200, 202), (path, allowed.text)
    stored = await read_stream(redis, "jarvis:alerts")
    assert len(stored) == 3
    assert {a["integration"] for a in stored} == {"default"}


async def test_pagerduty_needs_a_configured_routing_key_once_a_token_is_set(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Finding 1: PagerDuty senders cannot send a token. An `acknowledge` for a known
    dedup_key acknowledged a real P0 (which holds back its escalation)."""
    async with running(make_settings(api_token=TOKEN), [build_detector]) as (client, _):
        none_configured = await client.post("/webhooks/pagerduty", json=_pd("trigger", "k1"))
    assert none_configured.status_code == 403
    assert "pagerduty_routing_keys" in none_configured.json()["message"]
    assert await redis.xlen("jarvis:alerts") == 0

    settings = make_settings(api_token=TOKEN, detector={"pagerduty_routing_keys": [PD_KEY]})
    async with running(settings, [build_detector, build_triage]) as (client, _):
        trigger = await client.post("/webhooks/pagerduty", json=_pd("trigger", "db-down"))
        assert trigger.status_code == 202
        await eventually(lambda: read_stream(redis, "jarvis:severity"))
        forged = await client.post(
            "/webhooks/pagerduty", json=_pd("acknowledge", "db-down", routing_key="guessed")
        )
        assert forged.status_code == 400
        assert "routing_key" in forged.json()["errors"][0]
        real = await client.post("/webhooks/pagerduty", json=_pd("acknowledge", "db-down"))
        assert real.status_code == 202
        acks = await eventually(lambda: read_stream(redis, "jarvis:incidents"))
    assert [a["event_type"] for a in acks] == ["IncidentAcknowledged"]


async def test_named_integration_tokens_say_who_sent_an_alert(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        api_token=TOKEN, detector={"ingest_tokens": {"alertmanager-prod": AM_TOKEN}}
    )
    async with running(settings, [build_detector]) as (client, _):
        sent = await client.post(
            "/webhooks/alertmanager",
            json=_AM_BODY,
            headers={"Authorization": f"Bearer {AM_TOKEN}"},
        )
        # An integration token sends alerts; it is not an operator's.
        note = await client.post(
            "/api/v1/alerts", json={"service": "x"}, headers={"Authorization": "Bearer nope"}
        )
    assert sent.status_code == 202
    assert note.status_code == 401
    (alert,) = await read_stream(redis, "jarvis:alerts")
    assert alert["integration"] == "alertmanager-prod"
    assert alert["fingerprint"].startswith("ext:alertmanager-prod:")


async def test_an_integration_token_is_no_operator_token(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        api_token=TOKEN, detector={"ingest_tokens": {"alertmanager-prod": AM_TOKEN}}
    )
    async with running(settings, [build_recorder]) as (client, _):
        answer = await client.post(
            "/api/v1/incidents/x/notes",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {AM_TOKEN}"},
        )
    assert answer.status_code == 401


async def test_a_page_on_another_site_can_neither_raise_alerts_nor_approve(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Finding 2, the chain on a loopback install without a token: a web page POSTed a
    text/plain "high cpu" alert, computed the id of the playbook's docker.system_prune step
    and POSTed /approve with no body; the remediator ran it."""
    evil = {"Origin": "http://evil.example"}
    async with running(make_settings(), [build_detector, build_recorder]) as (client, runtime):
        plain = await client.post(
            "/api/v1/alerts",
            content=b'{"service": "backend", "summary": "high cpu"}',
            headers={"content-type": "text/plain"},
        )
        form = await client.post("/webhooks/alertmanager", data={"x": "1"})
        cross_site = await client.post("/api/v1/alerts", json={"service": "backend"}, headers=evil)
        referer = await client.post(
            "/api/v1/alerts",
            json={"service": "backend"},
            headers={"Referer": "http://evil.example/page"},
        )
        fetch_meta = await client.post(
            "/api/v1/alerts", json={"service": "backend"}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        # The dangerous step is waiting for approval.
        request = ActionRequested(
            incident_id="i-1", action="docker.system_prune", dangerous=True, producer="triage"
        )
        await runtime.bus("triage").publish(request)
        await eventually(lambda: _recorded(client, request.action_id))
        approve = f"/api/v1/actions/{request.action_id}/approve"
        no_body = await client.post(approve)
        wrong_action = await client.post(approve, json={"by": "mallory", "action": "verify.all"})
        approve_cross = await client.post(
            approve, json={"by": "mallory", "action": "docker.system_prune"}, headers=evil
        )
        # DNS rebinding: a name of the attacker's that resolves to 127.0.0.1.
        rebound = await client.get("/api/v1/incidents", headers={"Host": "evil.example:10300"})
        # What our own page and a plain client do still works.
        same_origin = await client.post(
            "/api/v1/alerts",
            json={"service": "backend"},
            headers={"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"},
        )
    assert plain.status_code == 415
    assert form.status_code == 415
    assert cross_site.status_code == referer.status_code == fetch_meta.status_code == 403
    assert no_body.status_code == 422
    assert wrong_action.status_code == 409
    assert approve_cross.status_code == 403
    assert rebound.status_code == 400
    assert "Host" in rebound.json()["detail"]
    assert same_origin.status_code == 202
    assert len(await read_stream(redis, "jarvis:alerts")) == 1
    assert not [e for e in await read_stream(redis, "jarvis:incidents") if e.get("action_id")]


async def _recorded(client: httpx.AsyncClient, action_id: str) -> bool:
    # The recorder answers 422 for a missing body only once it knows the action exists, so
    # ask with a body that names another action: 409 means it is recorded.
    answer = await client.post(
        f"/api/v1/actions/{action_id}/approve", json={"by": "probe", "action": "none.none"}
    )
    return answer.status_code == 409


async def test_reads_need_the_token_beyond_loopback(
    make_settings: Callable[..., Settings],
) -> None:
    """Finding 9: timelines (remediation details, artifact paths), /health details,
    /metrics and /docs were readable by anyone who reached the port."""
    reads = ["/", "/api/v1/incidents", "/api/v1/stats", "/health", "/metrics", "/docs"]
    reads += ["/openapi.json", "/asyncapi.json", "/api/v1/incidents/x/timeline"]
    settings = make_settings(http_host="0.0.0.0", api_token=TOKEN)
    async with running(settings, [build_recorder, build_detector]) as (client, _):
        for path in reads:
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert "Basic" in refused.headers["www-authenticate"]
            assert (await client.get(path, headers=BEARER)).status_code in (200, 404), path
        # A browser sends the token as the password of HTTP Basic (the operator page).
        basic = base64.b64encode(f"operator:{TOKEN}".encode()).decode()
        page = await client.get("/", headers={"Authorization": f"Basic {basic}"})
        assert page.status_code == 200
        wrong = base64.b64encode(b"operator:guess").decode()
        assert (
            await client.get("/", headers={"Authorization": f"Basic {wrong}"})
        ).status_code == 401

    opened = make_settings(
        http_host="0.0.0.0", api_token=TOKEN, http_open_paths=["/health", "/metrics"]
    )
    async with running(opened, [build_recorder]) as (client, _):
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/api/v1/incidents")).status_code == 401
        # The status page is public whatever else is protected (CONTRACT §5).
        for public in ("/status", "/status/feed.atom", "/api/v1/status"):
            assert (await client.get(public)).status_code == 200, public


async def test_reads_stay_open_on_loopback_unless_asked(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(api_token=TOKEN), [build_recorder]) as (client, _):
        assert (await client.get("/api/v1/incidents")).status_code == 200
    forced = make_settings(api_token=TOKEN, http_protect_reads=True)
    async with running(forced, [build_recorder]) as (client, _):
        assert (await client.get("/api/v1/incidents")).status_code == 401
