"""A request body nested too deeply for the JSON decoder is refused with a 4xx naming the
problem, never a 500, on every ingest route (issue 13 case 11)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from shared.settings import Settings
from shared.streams import ALERTS
from tests.helpers import running

pytestmark = pytest.mark.integration

DEEP = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit


@pytest.mark.parametrize(
    "path",
    ["/api/v1/alerts", "/webhooks/alertmanager", "/webhooks/grafana", "/webhooks/pagerduty"],
)
async def test_http_ingest_refuses_a_body_nested_too_deeply_with_a_4xx(
    redis: Redis, make_settings: Callable[..., Settings], path: str
) -> None:
    async with running(make_settings(), [build_detector]) as (client, _):
        response = await client.post(
            path, content=DEEP.encode(), headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500, response.text
    assert "nested too deeply" in response.text
    assert await redis.xlen(ALERTS.key) == 0
