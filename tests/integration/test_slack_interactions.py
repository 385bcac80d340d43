"""Acknowledge, approve and refuse from Slack, end to end: the escalator posts the buttons
to a route's Slack webhook (a real HTTP receiver), the test clicks them with requests
signed exactly as Slack signs them (form-encoded `payload=`), and the recorder turns each
click into the command the API would issue; the remediator then runs or refuses the action.
Stale, forged, replayed and unknown-user requests change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from redis.asyncio import Redis

from services.escalator.main import build as build_escalator
from services.recorder.main import build as build_recorder
from services.remediator.main import build as build_remediator
from shared.events import ActionRequested, Severity
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running
from tests.integration._escalator_support import http_receiver, severity_event
from tests.integration.remediator_fixtures import answers, final_answer
from tests.integration.test_remediator_service import _flushdb_setup

pytestmark = pytest.mark.integration

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
URL = "/webhooks/slack/interactions"


def _click(
    action_id: str,
    value: str,
    *,
    user: str = "U0CAROL",
    secret: str = SECRET,
    at: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A block_actions request as Slack sends it: form-encoded JSON, signed with v0."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "carol.k", "name": "carol.k", "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM", "domain": "jarvis"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "jarvis:x",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "trigger_id": "1.2.3",
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(at if at is not None else time.time()))
    # Signed here as Slack documents it, independently of the service's own code.
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    return body, headers


async def _post(client: httpx.AsyncClient, request: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = request
    return await client.post(URL, content=body, headers=headers)


def _button(bodies: list[Any], action_id: str, value: str) -> dict[str, Any]:
    for body in bodies:
        for block in body.get("blocks", []):
            for element in block.get("elements", []):
                if element.get("action_id") == action_id and element.get("value") == value:
                    return dict(element)
    raise AssertionError(f"no {action_id} button for {value} in {bodies}")


async def test_buttons_in_slack_act_as_the_api_would_and_only_for_signed_fresh_clicks(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    target, section = await _flushdb_setup(redis_url)
    with http_receiver() as critical:
        settings = make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'recorder.sqlite3'}",
            api_token="t0ken",
            remediator={"enabled": True, "enabled_actions": ["*"], "tick_s": 0.05, **section},
            escalator={
                "people": {"carol": {"email": "carol@example.org", "slack_user_id": "U0CAROL"}},
                "routes": {"critical": {"slack_webhook_url": critical.url}},
                "slack_interactivity": {"signing_secret": SECRET},
            },
        )
        builders = [build_recorder, build_escalator, build_remediator]
        async with running(settings, builders) as (client, runtime):
            bus = runtime.bus("test")
            incident = str(uuid.uuid4())
            opening = severity_event(incident, Severity.P1, runtime.clock.now())
            await bus.publish(opening)
            await eventually(lambda: _status(client, incident, "open"))
            refused = ActionRequested(
                incident_id=incident, action="redis.flushdb", target="jarvis-redis"
            )
            approved = ActionRequested(
                incident_id=incident, action="redis.flushdb", target="jarvis-redis"
            )
            await bus.publish(refused)

            # The approval request reaches #incidents-critical with Approve and Refuse.
            await eventually(lambda: _posted(critical, refused.action_id))
            await eventually(lambda: _recorded(client, incident, refused.event_id))
            button = _button(critical.bodies(), "jarvis.refuse", refused.action_id)
            assert button["style"] == "danger"
            _button(critical.bodies(), "jarvis.approve", refused.action_id)

            # Hostile requests first: none of them may act.
            stale = _click("jarvis.refuse", refused.action_id, at=time.time() - 301)
            assert (await _post(client, stale)).status_code == 401
            forged = _click("jarvis.refuse", refused.action_id, secret="not-the-secret")
            assert (await _post(client, forged)).status_code == 401
            stranger = _click("jarvis.refuse", refused.action_id, user="U0MALLORY")
            assert (await _post(client, stranger)).status_code == 403
            body, headers = _click("jarvis.refuse", refused.action_id)
            tampered = body.replace(b"carol.k", b"admin.x")
            assert (await client.post(URL, content=tampered, headers=headers)).status_code == 401
            assert (await client.post(URL, content=body, headers={})).status_code == 401
            assert [a["outcome"] for a in await answers(redis, refused.action_id)] == [
                "awaiting_approval"
            ]

            # The genuine click refuses the action, as POST /actions/{id}/refuse would.
            answer = await client.post(URL, content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            (done,) = answer.json()["done"]
            assert done["event_type"] == "ActionRefused"
            final = await final_answer(redis, refused.action_id)
            assert final["outcome"] == "rejected"
            assert final["detail"].startswith("refused by carol (Slack U0CAROL)")
            assert await target.get("cache:x") == b"1"  # never ran
            # The same request again is a replay: refused, and nothing is published twice.
            assert (await client.post(URL, content=body, headers=headers)).status_code == 409

            # Approve runs the other action, recorded as approved by the Slack user.
            await bus.publish(approved)
            await eventually(lambda: _posted(critical, approved.action_id))
            await eventually(lambda: _recorded(client, incident, approved.event_id))
            ok = await _post(client, _click("jarvis.approve", approved.action_id))
            assert ok.status_code == 200, ok.text
            ran = await final_answer(redis, approved.action_id)
            assert ran["outcome"] == "succeeded"
            assert ran["detail"].startswith("approved by carol (Slack U0CAROL)")

            # Acknowledge, from the button on the opening message.
            _button(critical.bodies(), "jarvis.ack", incident)
            acked = await _post(client, _click("jarvis.ack", incident))
            assert acked.status_code == 200, acked.text
            await eventually(lambda: _status(client, incident, "acknowledged"))
            events = await read_stream(redis, "jarvis:incidents")
            (ack,) = [e for e in events if e["event_type"] == "IncidentAcknowledged"]
            assert ack["by"] == "carol (Slack U0CAROL)"
            kinds = [e["event_type"] for e in events if e.get("incident_id") == incident]
            assert kinds.count("ActionRefused") == 1
            assert kinds.count("ActionApproved") == 1
            # An unknown incident is a 404, as from the API.
            missing = await _post(client, _click("jarvis.ack", str(uuid.uuid4())))
            assert missing.status_code == 404
    await target.aclose()


async def test_interactions_are_off_without_a_signing_secret(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    async with running(settings, [build_recorder]) as (client, _):
        answer = await _post(client, _click("jarvis.ack", "x"))
    assert answer.status_code == 404
    assert "signing_secret" in answer.text


async def _status(client: httpx.AsyncClient, incident: str, status: str) -> bool:
    answer = await client.get(f"/api/v1/incidents/{incident}")
    return answer.status_code == 200 and answer.json()["status"] == status


async def _posted(receiver: Any, action_id: str) -> bool:
    return any(action_id in json.dumps(b) for b in receiver.bodies())


async def _recorded(client: httpx.AsyncClient, incident: str, event_id: str) -> bool:
    """The recorder has the event (its commands look actions up there)."""
    answer = await client.get(f"/api/v1/incidents/{incident}/timeline")
    return answer.status_code == 200 and event_id in answer.text
