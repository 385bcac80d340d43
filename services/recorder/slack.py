"""Slack interactivity: a click on Acknowledge, Approve or Refuse becomes the very command
the API would issue, recorded as done by the Slack user.

`POST /webhooks/slack/interactions` authenticates by Slack's request signature, not the
bearer token: `v0=` HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the app's signing
secret, a timestamp within `max_age_s` (5 minutes) of now, and each signature accepted
once (remembered in Redis for twice that window), so a captured request cannot be
replayed. Slack posts the click form-encoded, as `payload=<JSON>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from services.recorder.commands import Commands
from shared.clock import Clock
from shared.settings import EscalatorSettings

__all__ = ["make_slack_router", "sign", "verify"]

log = logging.getLogger(__name__)

_SEEN = "jarvis:slack:seen:"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's signature of a request (what the `X-Slack-Signature` header carries)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, signature: str, body: bytes, now: float, max_age_s: int
) -> str | None:
    """None when the request is Slack's and fresh; otherwise why not."""
    if not timestamp.isdigit():
        return "X-Slack-Request-Timestamp: missing or not a number"
    if abs(now - int(timestamp)) > max_age_s:
        return f"X-Slack-Request-Timestamp: older than {max_age_s} s (or in the future)"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "X-Slack-Signature: does not match the signing secret"
    return None


def _clean(text: Any, limit: int = 64) -> str:
    return _CONTROL.sub("", str(text or ""))[:limit]


def make_slack_router(
    *,
    settings: EscalatorSettings,
    commands: Commands,
    redis: Redis,
    clock: Clock,
    max_body_bytes: int,
) -> APIRouter:
    router = APIRouter(tags=["slack"])
    config = settings.slack_interactivity
    by_slack_id = {p.slack_user_id: name for name, p in settings.people.items() if p.slack_user_id}

    @router.post("/webhooks/slack/interactions")
    async def interactions(request: Request) -> JSONResponse:
        """A click on a button of a Jarvis Responder message (signed by Slack)."""
        if config.signing_secret is None:
            raise HTTPException(
                404, "Slack interactivity is off: set escalator.slack_interactivity.signing_secret"
            )
        body = await request.body()
        if len(body) > max_body_bytes:
            raise HTTPException(413, f"body: larger than {max_body_bytes} bytes")
        problem = verify(
            config.signing_secret.get_secret_value(),
            request.headers.get("x-slack-request-timestamp", ""),
            request.headers.get("x-slack-signature", ""),
            body,
            clock.now().timestamp(),
            config.max_age_s,
        )
        if problem:
            raise HTTPException(401, problem)
        signature = request.headers["x-slack-signature"]
        if not await redis.set(_SEEN + signature, "1", nx=True, ex=2 * config.max_age_s):
            raise HTTPException(409, "X-Slack-Signature: this request was received before")
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            user = payload["user"]
            actions = payload.get("actions") or []
        except (KeyError, IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, "payload: expected a Slack interaction payload") from exc
        if payload.get("type") != "block_actions":
            return JSONResponse({"ok": True, "ignored": str(payload.get("type"))[:64]})
        slack_id = _clean(user.get("id"), 32)
        person = by_slack_id.get(slack_id)
        if person is None and config.people_only:
            raise HTTPException(
                403, f"user: Slack user {slack_id} is not in escalator.people (slack_user_id)"
            )
        name = person or f"slack:{_clean(user.get('username') or user.get('name') or slack_id)}"
        by = f"{name} (Slack {slack_id})"
        done = []
        for action in actions:
            kind, value = str(action.get("action_id")), _clean(action.get("value"), 64)
            # The click's own timestamp: Slack re-sending the same click maps to one event.
            key = f"slack:{slack_id}:{_clean(action.get('action_ts'), 32)}"
            if kind == "jarvis.ack":
                accepted = await commands.acknowledge(value, by, key)
            elif kind == "jarvis.approve":
                accepted = await commands.approve(value, by, key)
            elif kind == "jarvis.refuse":
                accepted = await commands.refuse(value, by, "refused in Slack", key)
            else:
                continue
            log.info("Slack %s by %s: %s", kind, by, accepted.event_id)
            done.append(accepted.model_dump())
        return JSONResponse({"ok": True, "done": done})

    return router
