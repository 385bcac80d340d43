"""The ingest routes as `shared.runtime.Direct` serves them, ahead of FastAPI's routing.

Direct must answer every request exactly as the FastAPI route it shadows: each request
below goes to the app with Direct and to the same app without it, and both answers must
be the same but for the fresh event ids."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.detector.main import build as build_detector
from shared.bus import EventBus
from shared.runtime import Runtime, Service, build_app, create_runtime
from shared.settings import Settings
from tests.helpers import read_stream, running

pytestmark = pytest.mark.integration

TOKEN = "operator-token-0123456789"
JSON = "application/json"
_ALERT = {"service": "backend", "check": "health", "summary": "down"}
_AM = {
    "version": "4",
    "status": "firing",
    "receiver": "jarvis",
    "groupKey": "{}:{}",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Down", "service": "postgres"},
            "annotations": {},
            "startsAt": "2026-03-01T11:55:00Z",
            "fingerprint": "f1",
        }
    ],
}
# (path, headers, body): what a sender may get wrong, and what it gets right.
_REQUESTS: list[tuple[str, dict[str, str], bytes]] = [
    ("/api/v1/alerts", {"content-type": JSON}, json.dumps(_ALERT).encode()),
    ("/api/v1/alerts", {"authorization": "Bearer wrong", "content-type": JSON}, b"{}"),
    ("/api/v1/alerts", {"authorization": f"Basic {TOKEN}", "content-type": JSON}, b"{}"),
    ("/api/v1/alerts", {"authorization": f"bearer {TOKEN}", "content-type": "text/plain"}, b"{}"),
    ("/api/v1/alerts", {"authorization": f"Bearer {TOKEN}"}, b"{}"),
    ("/api/v1/alerts", {"authorization": f"Bearer {TOKEN}", "content-type": JSON}, b"{"),
    ("/api/v1/alerts", {"authorization": f"Bearer {TOKEN}", "content-type": JSON}, b"[]"),
    (
        "/api/v1/alerts",
        {"authorization": f"Bearer {TOKEN}", "content-type": JSON},
        json.dumps([_ALERT, {"service": "", "labels": {"a": 1}}, 7]).encode(),
    ),
    (
        "/api/v1/alerts",
        {"authorization": f"Bearer {TOKEN}", "content-type": JSON},
        b"[" + b" " * 2_000 + b"]",
    ),
    ("/api/v1/alerts", {"authorization": f"Bearer {TOKEN}", "content-type": JSON}, b""),
    (
        "/api/v1/alerts",
        {"authorization": f"Bearer {TOKEN}", "content-type": "application/alert+json"},
        json.dumps([_ALERT, {**_ALERT, "event_id": "mine-1"}]).encode(),
    ),
    ("/webhooks/alertmanager", {"content-type": JSON}, json.dumps(_AM).encode()),
    (
        "/webhooks/alertmanager",
        {"authorization": f"Bearer {TOKEN}", "content-type": JSON},
        json.dumps({**_AM, "alerts": [{"labels": "x"}]}).encode(),
    ),
    (
        "/webhooks/alertmanager",
        {"authorization": f"Bearer {TOKEN}", "content-type": JSON},
        json.dumps(_AM).encode(),
    ),
    (
        "/webhooks/grafana",
        {"authorization": f"Bearer {TOKEN}", "content-type": JSON},
        json.dumps({"alerts": 3}).encode(),
    ),
    ("/webhooks/pagerduty", {"content-type": "text/plain"}, b"{}"),
    ("/webhooks/pagerduty/v2/enqueue", {"content-type": JSON}, b"{}"),
]
_IDS = ("event_ids",)


def _without_direct(runtime: Runtime) -> Service:
    return dataclasses.replace(build_detector(runtime), direct={})


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    body = response.json()
    if isinstance(body, dict):  # fresh ids differ from app to app; their number may not
        body = {k: len(v) if k in _IDS else v for k, v in body.items()}
    keep = ("content-type", "www-authenticate", "retry-after")
    headers = {k: response.headers[k] for k in keep if k in response.headers}
    return response.status_code, headers, body


async def _answers(settings: Settings, build: Callable[[Runtime], Service]) -> list[Any]:
    async with running(settings, [build]) as (client, _):
        return [
            _answer(await client.post(path, headers=headers, content=body))
            for path, headers, body in _REQUESTS
        ]


async def test_direct_answers_as_the_fastapi_routes_do(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        api_token=TOKEN,
        detector={"max_body_bytes": 1_024, "pagerduty_routing_keys": ["R" * 32]},
    )
    direct = await _answers(settings, build_detector)
    routed = await _answers(settings, _without_direct)
    assert direct == routed
    # and the requests were what they were meant to be
    assert [status for status, _, _ in direct] == [
        401, 401, 401, 415, 415, 422, 422, 422, 413, 422, 202, 401, 422, 202, 422, 415, 400
    ]  # fmt: skip


async def test_direct_serves_the_ingest_routes_which_openapi_still_lists(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(), [build_detector]) as (client, runtime):
        served = build_detector(runtime).direct
        assert set(served) == {
            ("POST", "/api/v1/alerts"),
            ("POST", "/webhooks/alertmanager"),
            ("POST", "/webhooks/grafana"),
            ("POST", "/webhooks/pagerduty"),
            ("POST", "/webhooks/pagerduty/v2/enqueue"),
        }
        paths = (await client.get("/openapi.json")).json()["paths"]
        for method, path in served:
            assert method.lower() in paths[path], path
        # anything else goes on to FastAPI: its 405 and its redirect
        assert (await client.get("/api/v1/alerts")).status_code == 405
        assert (await client.post("/api/v1/alerts/", json=_ALERT)).status_code == 307


async def test_a_redis_error_under_a_direct_route_is_answered_as_under_fastapi(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_: object, **__: object) -> list[str]:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(EventBus, "publish_together", refused)
    answers = [await _answers(make_settings(), b) for b in (build_detector, _without_direct)]
    assert answers[0] == answers[1]
    assert answers[0][0] == (
        503,
        {"content-type": JSON, "retry-after": "1"},
        {"detail": "Redis is unavailable; try again"},
    )


async def test_direct_is_inside_the_access_middleware(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """A request Direct serves is first refused by AccessMiddleware when it would be."""
    async with running(make_settings(), [build_detector]) as (client, _):
        foreign = await client.post(
            "/api/v1/alerts", json=_ALERT, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert "Origin" in foreign.json()["detail"]
    assert await read_stream(redis, "jarvis:alerts") == []


async def test_the_202_is_the_body_jsonresponse_would_send(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(), [build_detector]) as (client, _):
        for alerts in ([_ALERT], [_ALERT, {**_ALERT, "service": "redis"}]):
            answer = await client.post("/api/v1/alerts", json=alerts)
            assert answer.status_code == 202
            assert answer.content == JSONResponse(answer.json()).body
            assert answer.headers["content-type"] == "application/json"


async def test_an_unexpected_error_is_a_500_as_under_fastapi(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("services.detector.webhooks.parse_alerts", broken)
    answers = []
    for build in (build_detector, _without_direct):
        settings = make_settings()
        runtime = create_runtime(settings, settings.redis_url)
        app = build_app(runtime, [build(runtime)])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                answer = await c.post("/api/v1/alerts", json=_ALERT)
                answers.append((answer.status_code, answer.text))
    assert answers == [(500, "Internal Server Error")] * 2
