"""Guards of the recorder's HTTP surface: the bearer token on write endpoints, the refusal
to listen beyond loopback without one, and the limit on request bodies."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Message

from shared.settings import ConfigError, Settings

__all__ = ["bearer_guard", "check_exposure", "is_loopback", "limited_body_route"]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard: reachable from elsewhere


def check_exposure(settings: Settings) -> None:
    """Refuse an HTTP server reachable from other machines whose write endpoints are open.

    Raises ConfigError naming the settings; call it before the server starts listening.
    """
    if not settings.api_token and not is_loopback(settings.http_host):
        raise ConfigError(
            f"JARVIS_API_TOKEN: required when JARVIS_HTTP_HOST ({settings.http_host}) is not "
            "a loopback address — set a token, or listen on 127.0.0.1"
        )


def bearer_guard(token: str | None) -> Callable[..., Awaitable[None]]:
    """A dependency: `Authorization: Bearer <token>` when a token is configured."""
    scheme = HTTPBearer(auto_error=False, description="JARVIS_API_TOKEN")
    expected = (token or "").encode()

    async def guard(
        credentials: HTTPAuthorizationCredentials | None = Depends(scheme),  # noqa: B008
    ) -> None:
        if not expected:
            return
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, expected):
            raise HTTPException(
                401,
                "Authorization: a valid bearer token is required (JARVIS_API_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


def limited_body_route(max_bytes: int) -> type[APIRoute]:
    """A route class refusing bodies over `max_bytes` with 413, before they are buffered."""

    class LimitedBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(max_bytes)
                received = 0
                upstream = request.receive

                async def receive() -> Message:
                    nonlocal received
                    message = await upstream()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > max_bytes:
                            raise _too_large(max_bytes)
                    return message

                return await handler(Request(request.scope, receive))

            return limited

    return LimitedBodyRoute


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"body: larger than {max_bytes} bytes")
